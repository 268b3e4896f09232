"""`llama_cpp.server` for the tests: the embedded GGUF on 127.0.0.1, loaded the way the
in-process engine loads it (same file, context size, threads and seed; llama.cpp's extra
buffer types off, see `promptc.runtime.local.load_params`), so that the two answer alike.

    python tests/server/serve.py PORT
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> None:
    import uvicorn
    from llama_cpp.server.app import create_app
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    from promptc.runtime import local

    port = int(argv[0])
    threads = local.llama_threads()
    model = ModelSettings(
        model=str(local.default_model_path()), model_alias="smollm2", n_ctx=local.N_CTX,
        n_threads=threads, n_threads_batch=threads, seed=0, verbose=False,
    )
    with local.load_params():  # create_app loads the model
        app = create_app(server_settings=ServerSettings(host="127.0.0.1", port=port), model_settings=[model])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])
