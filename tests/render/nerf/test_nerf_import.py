"""Importing the NeRF package stays cheap: no Numba, no compiled kernel."""

import subprocess
import sys


def test_import_does_not_load_numba():
    code = (
        "import sys, neuralframe.render.nerf as n; n.HashGrid(n_levels=2, log2_hashmap_size=8); "
        "assert 'numba' not in sys.modules, 'numba imported'; "
        "assert 'neuralframe.render.nerf.hashgrid_cpu' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
