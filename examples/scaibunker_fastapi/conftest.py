# The example's tests run against a real authzd started by the client's pytest plugin
# (authzd.testing); from the authzd tree the client is imported without installing it.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python"))

pytest_plugins = ["authzd.testing"]
