"""`python -m tests.support.serve_testing`: `python -m server` with TestingService added."""

from server.__main__ import main
from tests.support.testing_service import TEST_MODULES

if __name__ == "__main__":
    main(TEST_MODULES)
