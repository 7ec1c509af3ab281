"""Statistics shared by the jobs: pure numpy/scipy functions over arrays."""
