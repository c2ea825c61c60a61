from setuptools import setup

# All metadata lives in setup.cfg; this file only lets older tools run `setup.py`.
setup()
