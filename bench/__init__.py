"""The benchmark scripts (bench/README.md); a package so that mypy checks them with the app and the tests."""
