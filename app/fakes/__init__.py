"""The built-in fake AceData upstream (tests, demo, benchmarks) and the demo command."""
