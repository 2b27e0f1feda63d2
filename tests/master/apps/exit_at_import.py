"""An application module that ends its process while being imported (os._exit(1))."""

import os
import time

with open(os.environ["SPAWN_LOG"], "a") as _log:
    _log.write(f"{os.getpid()} {time.time()}\n")
os._exit(1)
