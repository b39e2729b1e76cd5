"""JupyterLab/Jupyter Server settings for the course (used by `make lab` and the tests).

Safe defaults for a laptop or a shared machine: listen on localhost only and keep the
token. Never set `ip = "0.0.0.0"` or an empty token here; see instructor/README.md for
running the course on a JupyterHub.
"""

c = get_config()  # noqa: F821  (provided by Jupyter when it loads this file)
c.ServerApp.ip = "127.0.0.1"
c.ServerApp.open_browser = True
c.ServerApp.allow_remote_access = False
