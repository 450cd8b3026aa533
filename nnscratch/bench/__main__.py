"""``python -m nnscratch.bench --worker KIND``: one benchmark worker, started by ``nnscratch bench``."""

import sys

from nnscratch.bench.worker import serve

if sys.argv[1:2] != ["--worker"] or len(sys.argv) != 3:
    sys.exit("usage: python -m nnscratch.bench --worker KIND (a worker of `nnscratch bench`)")
sys.exit(serve(sys.argv[2]))
