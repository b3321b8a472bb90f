"""The project file as a DAG: steps with cache keys, a runner that skips what is unchanged and
resumes what was interrupted, the record of every run, and leases so that no two processes run
the same thing at once. What each step does is given by the service layer (services/pipelines.py).
"""
