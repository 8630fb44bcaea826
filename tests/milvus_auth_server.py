"""Milvus Lite's own gRPC server with the token check a Milvus server does when
authorization is on: ``python tests/milvus_auth_server.py DATA_DIR PORT TOKEN``.

Milvus Lite has no authorization, so the tests of a refused token put this in front of
the real Lite servicer. Like Milvus's proxy (its ``AuthenticationInterceptor``), it reads
the ``authorization`` metadata pymilvus sends (base64 of the token) and answers any call
without the right one with gRPC ``UNAUTHENTICATED`` and Milvus's message. Binds only
127.0.0.1.
"""

from __future__ import annotations

import base64
import sys
from concurrent import futures

import grpc
from milvus_lite.adapter.grpc.servicer import MilvusServicer
from milvus_lite.db import MilvusLite
from pymilvus.grpc_gen import milvus_pb2_grpc

MESSAGE = "auth check failure, please check username and password are correct"


class TokenCheck(grpc.ServerInterceptor):
    """Let a call through only with ``authorization: base64(token)``."""

    def __init__(self, token: str) -> None:
        self.expected = base64.b64encode(token.encode()).decode()

    def intercept_service(self, continuation, handler_call_details):
        metadata = dict(handler_call_details.invocation_metadata or ())
        if metadata.get("authorization") == self.expected:
            return continuation(handler_call_details)

        def deny(request, context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, MESSAGE)

        return grpc.unary_unary_rpc_method_handler(deny)


def main(data_dir: str, port: int, token: str) -> None:
    """Serve until killed."""
    db = MilvusLite(data_dir)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4), interceptors=[TokenCheck(token)]
    )
    milvus_pb2_grpc.add_MilvusServiceServicer_to_server(MilvusServicer(db), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print(f"listening on 127.0.0.1:{port}", flush=True)
    try:
        server.wait_for_termination()
    finally:
        db.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
