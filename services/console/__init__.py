"""The console: the CSMs' web workspace (server-rendered), reading scoring and alerts through their APIs."""
