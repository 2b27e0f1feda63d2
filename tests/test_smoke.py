import requests


def test_hello(greenserve):
    server = greenserve("basic:app")
    response = requests.get(server.url + "/", timeout=5)
    assert response.status_code == 200
    assert response.text == "Hello, world!"
    assert response.headers["Server"] == "greenserve"
