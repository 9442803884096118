enum _PlaceholderPlexusTestKit {}
