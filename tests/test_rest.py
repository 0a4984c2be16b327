import base64

import pytest
import requests
import responses
from responses import matchers

from inventory.errors import RestError
from inventory.rest import RestClient, make_session

BASE = "https://acme.example"
INDEX = {"name": "Acme", "url": BASE, "home": BASE, "namespaces": ["wp/v2"], "authentication": []}


def client(**kwargs: object) -> RestClient:
    return RestClient(BASE + "/", user="fleet", password="abcd efgh ijkl", session=make_session(backoff=0), **kwargs)  # type: ignore[arg-type]


@responses.activate
def test_application_password_basic_auth() -> None:
    token = base64.b64encode(b"fleet:abcd efgh ijkl").decode()
    responses.get(f"{BASE}/wp-json/wp/v2/plugins", json=[{"plugin": "akismet/akismet", "status": "active", "version": "5.3"}],
                  match=[matchers.header_matcher({"Authorization": f"Basic {token}"})])
    assert client().plugins()[0]["plugin"] == "akismet/akismet"


@responses.activate
def test_401_is_a_clean_error() -> None:
    responses.get(f"{BASE}/wp-json/wp/v2/plugins", status=401, json={
        "code": "rest_cannot_view_plugins", "message": "Sorry, you are not allowed to manage plugins for this site.",
        "data": {"status": 401}})
    with pytest.raises(RestError) as caught:
        client().plugins()
    assert caught.value.status == 401 and caught.value.code == "rest_cannot_view_plugins"
    assert "401" in str(caught.value)


@responses.activate
def test_403_and_404_route() -> None:
    responses.get(f"{BASE}/wp-json/wp/v2/users/me", status=403, json={"code": "rest_forbidden", "message": "no", "data": {"status": 403}})
    responses.get(f"{BASE}/wp-json/wp/v2/plugins", status=404, json={"code": "rest_no_route", "message": "No route", "data": {"status": 404}})
    with pytest.raises(RestError, match="403"):
        client().me()
    with pytest.raises(RestError, match="rest_no_route"):
        client().plugins()


@responses.activate
def test_falls_back_to_rest_route_when_wp_json_is_not_routed() -> None:
    responses.get(f"{BASE}/wp-json/", status=404, body="<html>Not Found</html>", content_type="text/html")
    responses.get(f"{BASE}/", json=INDEX, match=[matchers.query_param_matcher(
        {"rest_route": "/", "_fields": "name,url,home,namespaces,authentication"})])
    responses.get(f"{BASE}/", json=[], match=[matchers.query_param_matcher({"rest_route": "/wp/v2/plugins", "context": "view"})])
    rest = client()
    assert rest.index()["name"] == "Acme"
    assert rest.plugins() == []  # the fallback is remembered


@responses.activate
def test_html_answer_is_not_parsed() -> None:
    responses.get(f"{BASE}/wp-json/wp/v2/plugins", status=503, body="<h1>Briefly unavailable</h1>", content_type="text/html")
    with pytest.raises(RestError, match="not JSON"):
        client().plugins()


@responses.activate
def test_get_is_retried_on_503() -> None:
    responses.get(f"{BASE}/wp-json/", status=503, json={"code": "x"})
    responses.get(f"{BASE}/wp-json/", json=INDEX)
    assert client().index()["name"] == "Acme"
    assert len(responses.calls) == 2


@responses.activate
def test_body_size_is_bounded() -> None:
    responses.get(f"{BASE}/wp-json/wp/v2/plugins", body=b"[" + b"0," * 5000 + b"0]", content_type="application/json")
    with pytest.raises(RestError, match="larger than"):
        client(max_bytes=1000).plugins()


@responses.activate
def test_tls_failure_is_reported_not_bypassed() -> None:
    responses.get(f"{BASE}/wp-json/", body=requests.exceptions.SSLError("certificate verify failed"))
    with pytest.raises(RestError, match="TLS verification failed"):
        client().index()


def test_a_body_that_breaks_off_mid_stream_is_a_rest_error() -> None:
    """A real socket that promises 100000 bytes and hangs up after 10: an error of ours, not requests'."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        connection, _ = server.accept()
        connection.recv(65536)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
                           b'{"name": "')
        connection.close()

    threading.Thread(target=serve, daemon=True).start()
    rest = RestClient(f"http://127.0.0.1:{server.getsockname()[1]}/", session=make_session(retries=0))
    with pytest.raises(RestError, match="REST response broke off after"):
        rest.index()
    server.close()


def test_the_password_is_not_in_the_clients_repr() -> None:
    assert "abcd efgh ijkl" not in repr(client()) and "fleet" in repr(client())
