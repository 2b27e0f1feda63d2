"""Access log and error log: destinations, formats, levels."""

from __future__ import annotations

import re
import socket

import requests

from tests.conftest import GreenserveProcess, read_until_close, wait_until

#: The default format: '%(h)s - %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(D)sus'.
DEFAULT_LINE = re.compile(
    r"^127\.0\.0\.1 - - \[\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] "
    r'"GET /list\?x=1 HTTP/1\.1" 200 6 "http://ref/" "test-agent/1\.0" \d+us$'
)


def _get(server, path="/list?x=1", session=requests, **headers):
    headers = {"User-Agent": "test-agent/1.0", "Referer": "http://ref/", **headers}
    return session.get(server.url + path, headers=headers, timeout=5)


def _logged_after(server, session: requests.Session, start: int, url: str = "") -> list[str]:
    """The log lines from ``start`` to an app line logged by a last request on ``session``.

    The worker logs a request's access line before it reads the next request
    on the connection: once the app's line is in, whatever the earlier
    requests logged is in too, with no sleeping and guessing.
    """
    marker = f"barrier-{start}"
    response = session.get(f"{url or server.url}/log?marker={marker}", timeout=15)
    assert response.content == b"logged"
    line = server.wait_for(rf"app says {marker}$", start=start)
    return server.lines[start : server.lines.index(line)]


def test_access_log_on_by_default_to_stderr(greenserve):
    server = greenserve("probe:app", quiet=False)
    start = len(server.lines)
    assert _get(server).status_code == 200
    line = server.wait_for(r'"GET /list', start=start)
    assert DEFAULT_LINE.match(line), line


def test_access_log_user_and_missing_body(greenserve):
    server = greenserve("probe:app", quiet=False)
    start = len(server.lines)
    response = requests.get(
        server.url + "/status?code=204", auth=("alice", "secret"), headers={"User-Agent": "x"}, timeout=5
    )
    assert response.status_code == 204
    line = server.wait_for(r'"GET /status', start=start)
    assert line.startswith("127.0.0.1 - alice [")
    assert '" 204 - "-" "x" ' in line


def test_access_logfile(greenserve, tmp_path):
    path = tmp_path / "access.log"
    server = greenserve("--access-logfile", str(path), "probe:app")
    start = len(server.lines)
    with requests.Session() as session:
        _get(server, session=session)
        assert wait_until(lambda: path.exists() and "GET /list" in path.read_text(), 5)
        assert DEFAULT_LINE.match(path.read_text().splitlines()[0]), path.read_text()
        assert not any("GET /list" in line for line in _logged_after(server, session, start))


def test_access_logformat(greenserve):
    fmt = "%(h)s %(r)s %(s)s %(b)s %(D)s %({user-agent}i)s %({content-type}o)s"
    server = greenserve("--access-logformat", fmt, "probe:app", quiet=False)
    start = len(server.lines)
    _get(server)
    line = server.wait_for(r"GET /list", start=start)
    assert re.fullmatch(
        r"127\.0\.0\.1 GET /list\?x=1 HTTP/1\.1 200 6 \d+ test-agent/1\.0 text/plain", line
    ), line


def test_access_log_for_streamed_and_failed_requests(greenserve):
    fmt = "%(r)s %(s)s %(B)s"
    server = greenserve("--access-logformat", fmt, "probe:app", quiet=False)
    start = len(server.lines)
    requests.get(server.url + "/stream?chunks=4", timeout=5)
    requests.post(server.url + "/echo", data=b"12345", timeout=5)
    assert server.wait_for(r"GET /stream", start=start).endswith(" 200 28")
    assert server.wait_for(r"POST /echo", start=start).endswith(" 200 5")


def test_no_access_log(greenserve):
    server = greenserve("--no-access-log", "probe:app")
    start = len(server.lines)
    with requests.Session() as session:
        _get(server, session=session)
        _get(server, "/calls", session=session)
        assert not any("GET /" in line for line in _logged_after(server, session, start)), server.log


def test_log_level_debug(greenserve):
    server = greenserve("--log-level", "debug", "probe:app")
    start = len(server.lines)
    with server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n")
        read_until_close(sock)
    server.wait_for(r"\[DEBUG\]", start=start)


def test_log_level_warning_hides_info():
    """Nothing is logged at INFO, not even the address: the test binds the socket itself."""
    listener = socket.create_server(("127.0.0.1", 0))
    server = GreenserveProcess(
        ["--no-access-log", "-b", f"fd://{listener.fileno()}", "--log-level", "warning", "probe:app"],
        pass_fds=(listener.fileno(),),
    )
    try:
        server.start(ready=None)
        port = listener.getsockname()[1]
        with requests.Session() as session:
            # Served once the worker is up: every start-up line is in the log before this one.
            _logged_after(server, session, 0, f"http://127.0.0.1:{port}")
        assert server.proc.poll() is None, server.log
        assert "[INFO]" not in server.log
    finally:
        listener.close()
        server.stop()


def test_default_log_level_hides_debug(greenserve):
    server = greenserve("probe:app")
    start = len(server.lines)
    with server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n")
        read_until_close(sock)
    # The rejection was logged (at DEBUG, or not at all) before the connection closed.
    with requests.Session() as session:
        _logged_after(server, session, start)
    assert "[DEBUG]" not in server.log


def test_error_logfile(tmp_path):
    path = tmp_path / "error.log"
    server = GreenserveProcess(
        ["--no-access-log", "-b", "127.0.0.1:0", "--error-logfile", str(path), "probe:app"]
    )
    try:
        server.start(ready=None)
        assert wait_until(lambda: path.exists() and "serving" in path.read_text(), 15), server.log
        url = re.search(r"Listening at: (\S+)", path.read_text()).group(1)
        assert requests.get(url + "/list", timeout=5).content == b"abcdef"
        requests.get(url + "/nothing-here", timeout=5)
    finally:
        assert server.stop() == 0
    text = path.read_text()
    assert "Listening at" in text
    assert "[INFO]" in text
    assert "Listening at" not in server.log
