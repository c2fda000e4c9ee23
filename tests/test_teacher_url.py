"""``teacher_ckpt`` the OpenMMLab way: a local path, an ``http(s)://`` URL cached once in the
torch hub dir, or ``'pretrained'`` (the weights of an mmpretrain model name's metafile).

The URL tests serve a real teacher checkpoint from a server on 127.0.0.1 that the test starts;
nothing leaves the machine."""
import http.server
import os.path as osp
import shutil
import socket
import threading

import pytest
import torch
from mmengine.config import Config

import mmkd  # noqa: F401
from mmkd.models import builder
from mmkd.models.builder import (CheckpointDownloadError, build_model, hub_cache_path,
                                 load_teacher_checkpoint)
from mmkd.registry import MODELS
from conftest import CNN, VIT

CKPT_NAME = 'fmnist-teacher_20240101-0123abcd.pth'
# an mmpretrain model name and the weights URL its metafile lists (mmpretrain 1.2.0)
HUB_NAME = 'resnet18_8xb32_in1k'
HUB_URL = ('https://download.openmmlab.com/mmclassification/v0/resnet/'
           'resnet18_8xb32_in1k_20210831-fbbb1da6.pth')


class CheckpointServer:
    """Serves one file at ``/<CKPT_NAME>`` (404 elsewhere) and counts the GET requests."""

    def __init__(self, path: str):
        with open(path, 'rb') as f:
            payload = f.read()
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                server.requests.append(self.path)
                if self.path != f'/{CKPT_NAME}':
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header('Content-Type', 'application/octet-stream')
                self.send_header('Content-Length', str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):  # keep the test output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.base = f'http://127.0.0.1:{self.httpd.server_address[1]}'
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """The hub cache under tmp_path, as a user's ``TORCH_HOME`` would move it."""
    home = tmp_path / 'torch_home'
    monkeypatch.setenv('TORCH_HOME', str(home))
    return home


@pytest.fixture
def server(teacher_ckpt):
    srv = CheckpointServer(teacher_ckpt)
    yield srv
    srv.close()


def build_distiller(teacher_ckpt, teacher=CNN, student=VIT):
    return MODELS.build(dict(type='ClassificationDistiller', student=student, teacher=teacher,
                             teacher_ckpt=teacher_ckpt,
                             distill_losses=dict(loss_kd=dict(type='KDLoss', tau=4.0))))


def closed_port() -> int:
    """A port nothing listens on: bound, then released."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_url_teacher_is_downloaded_once_into_the_hub_cache(server, torch_home, teacher_ckpt):
    url = f'{server.base}/{CKPT_NAME}'
    cached = torch_home / 'hub' / 'checkpoints' / CKPT_NAME
    assert hub_cache_path(url) == str(cached)  # TORCH_HOME is honoured, read at call time

    model = build_distiller(url)
    assert server.requests == [f'/{CKPT_NAME}']
    assert cached.is_file()
    expected = torch.load(teacher_ckpt)['state_dict']
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(v, expected[k]), k

    again = build_distiller(url)  # a second run (or resume) reads the cache
    assert len(server.requests) == 1
    for k, v in again.teacher.state_dict().items():
        assert torch.equal(v, expected[k]), k


def test_url_teacher_is_loaded_strictly(server, torch_home):
    # a ViT teacher given the CNN's checkpoint: the same key check as for a local file
    with pytest.raises(ValueError, match=r"teacher checkpoint '.*checkpoints/"
                                         + CKPT_NAME.replace('.', r'\.') + "' does not match"):
        build_distiller(f'{server.base}/{CKPT_NAME}', teacher=VIT)


def test_missing_url_names_the_url_and_the_cache_path(server, torch_home):
    url = f'{server.base}/no-such-teacher.pth'
    cached = torch_home / 'hub' / 'checkpoints' / 'no-such-teacher.pth'
    with pytest.raises(CheckpointDownloadError) as err:
        build_distiller(url)
    msg = str(err.value)
    assert url in msg and str(cached) in msg and '404' in msg
    assert not cached.exists()  # nothing half-written that a later run would load
    assert not list((torch_home / 'hub' / 'checkpoints').iterdir())


def test_offline_error_then_placing_the_file_where_it_said(torch_home, teacher_ckpt):
    url = f'http://127.0.0.1:{closed_port()}/{CKPT_NAME}'
    with pytest.raises(CheckpointDownloadError) as err:
        build_distiller(url)
    msg = str(err.value)
    assert url in msg and str(torch_home / 'hub' / 'checkpoints' / CKPT_NAME) in msg
    # the message's advice works: the file placed by hand is used, with no network
    dst = msg.split('place it at ')[1].split("'")[1]
    shutil.copy(teacher_ckpt, dst)
    model = build_distiller(url)
    expected = torch.load(teacher_ckpt)['state_dict']
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(v, expected[k]), k


def test_local_path_unchanged(teacher_ckpt, tmp_path):
    build_distiller(teacher_ckpt)
    with pytest.raises(FileNotFoundError, match="teacher checkpoint '.*nope.pth' does not exist"):
        build_distiller(str(tmp_path / 'nope.pth'))


@pytest.fixture
def fake_hub_download(monkeypatch, tmp_path):
    """Replace the network fetch: 'download' a checkpoint of the hub model, record the URL."""
    torch.manual_seed(1)
    model = build_model(HUB_NAME, 'teacher')
    src = str(tmp_path / 'hub_model.pth')
    torch.save(dict(meta=dict(), state_dict=model.state_dict()), src)
    urls = []

    def download(url, dst, progress=True):
        urls.append(url)
        shutil.copy(src, dst)
    monkeypatch.setattr(torch.hub, 'download_url_to_file', download)
    return urls, model.state_dict()


def test_pretrained_resolves_the_model_index_weights(fake_hub_download, torch_home):
    urls, expected = fake_hub_download
    assert builder.pretrained_url(HUB_NAME) == HUB_URL
    teacher = build_model(HUB_NAME, 'teacher')
    load_teacher_checkpoint(teacher, 'pretrained', spec=HUB_NAME)
    assert urls == [HUB_URL]
    assert osp.isfile(torch_home / 'hub' / 'checkpoints' / osp.basename(HUB_URL))
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, expected[k]), k

    # through a distiller's config: teacher by name, teacher_ckpt='pretrained'; cached now
    student = Config.fromfile(CNN).model
    student.head.num_classes = 1000  # KD compares logits: the ImageNet teacher's classes
    model = build_distiller('pretrained', teacher=HUB_NAME, student=student.to_dict())
    assert urls == [HUB_URL]
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(v, expected[k]), k


@pytest.mark.parametrize('teacher', [CNN, 'mmpretrain::resnet/resnet18_8xb32_in1k.py',
                                     dict(type='ImageClassifier')])
def test_pretrained_needs_a_model_name(teacher, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError('must fail before any download')
    monkeypatch.setattr(torch.hub, 'download_url_to_file', no_network)
    with pytest.raises(ValueError, match="teacher_ckpt='pretrained' .* mmpretrain model name"):
        builder.resolve_checkpoint('pretrained', 'teacher', teacher)


def test_pretrained_with_an_unknown_name_suggests_names():
    with pytest.raises(ValueError, match=r"not an mmpretrain model name.*resnet18_8xb32_in1k"):
        builder.pretrained_url('resnet18_8xb32_in1kk')
