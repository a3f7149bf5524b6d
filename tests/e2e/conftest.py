from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.e2e.servers import ServerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture
def start_server(transactional_db: None) -> Iterator[Callable[..., ServerProcess]]:
    """Start real server processes; every one is stopped at teardown."""
    started: list[ServerProcess] = []

    def start(name: str, **kwargs: object) -> ServerProcess:
        server = ServerProcess(name, **kwargs).start()  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
