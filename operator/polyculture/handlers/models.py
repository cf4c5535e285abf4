"""CommunityModel handlers (filled in below)."""
