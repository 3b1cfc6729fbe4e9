import os
import sys

# Tests import their shared helpers (oracle.py) as plain modules.
sys.path.insert(0, os.path.dirname(__file__))
