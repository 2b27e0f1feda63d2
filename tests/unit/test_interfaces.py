"""The zope.interface contracts hold for what greenserve ships."""

import pickle

import pytest

from greenserve import hooks, interfaces
from greenserve.config import Config
from greenserve.protocol.events import Limits
from greenserve.protocol.parser import HeadParser, head_parser_class


@pytest.mark.parametrize("backend", ["h11", "httptools"])
def test_head_parsers_follow_the_head_parser_protocol(backend):
    parser = head_parser_class(backend)(Limits())
    assert isinstance(parser, HeadParser)
    assert parser.name == backend


@pytest.mark.parametrize(
    ("event", "interface"),
    [
        (hooks.Starting(None), interfaces.IStarting),
        (hooks.WhenReady(None), interfaces.IWhenReady),
        (hooks.Exit(None), interfaces.IExit),
        (hooks.PreFork(None, None), interfaces.IPreFork),
        (hooks.PostFork(None, None), interfaces.IPostFork),
        (hooks.PostWorkerInit(None), interfaces.IPostWorkerInit),
        (hooks.WorkerExit(None), interfaces.IWorkerExit),
        (hooks.PreRequest(None, {}), interfaces.IPreRequest),
        (hooks.PostRequest(None, {}, 200), interfaces.IPostRequest),
    ],
)
def test_each_event_provides_exactly_its_interface(event, interface):
    assert interface.providedBy(event)
    others = [
        i
        for i in vars(interfaces).values()
        if isinstance(i, type(interfaces.IServerEvent))
        and i.extends(interfaces.IServerEvent)
        and i is not interface
        and not interface.extends(i)
    ]
    assert not [i for i in others if i.providedBy(event)]


def test_config_without_hooks_is_picklable():
    config = Config(app="x:y", workers=3)
    assert pickle.loads(pickle.dumps(config)) == config
