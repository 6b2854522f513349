"""Suite-wide test settings.

Under CI (``CI`` set in the environment) hypothesis runs derandomized, so a submission's CI
result does not depend on which examples a random draw happened to try; locally it explores
with fresh randomness (and its example database) as usual.
"""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
