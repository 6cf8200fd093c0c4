"""Deploy fixtures live in tests/deploy/stubs.py (tests/adversarial/test_deploy.py uses them too)."""

from tests.deploy.stubs import project, stub_image  # noqa: F401
