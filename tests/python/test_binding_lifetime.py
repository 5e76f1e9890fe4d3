"""Lifetimes across threads (issue 20, robustness item 3): closing a model, session or image while
another thread is inside a call that uses it must neither free the C object under the call nor
crash. The documented rule: close() marks the object closed at once (later calls raise
StateError) and frees it when the last call using it returns; a model also waits for its
sessions (which it closes), an image for its pixels views. The calls are paused at a known point
by a progress callback, so each test closes the object mid-call every time (under
AddressSanitizer the unfixed binding reports heap-use-after-free in vision.c, llm.c, crf.c,
session.c and in the reads of a pixels view)."""
import gc
import os
import threading

import pytest

from conftest import IMAGE, SOURCE_DIR

TINY = os.path.join(SOURCE_DIR, "models", "tiny")
CLASSES = ["cat", "sofa"]
TIMEOUT = 120  # seconds; generous for sanitizer builds


class Pause:
    """A session progress callback that holds the call inside the library at the first report of
    `stage` until resume() is called from another thread (or the call's own thread, see below)."""

    def __init__(self, stage):
        self.stage, self.seen = stage, []
        self.inside, self.go = threading.Event(), threading.Event()
        self.on_pause = None  # run inside the call, on the calling thread, instead of waiting

    def __call__(self, stage, done, total):
        self.seen.append((stage, done, total))
        if stage == self.stage and not self.inside.is_set():
            self.inside.set()
            if self.on_pause is not None:
                self.on_pause()
            else:
                assert self.go.wait(TIMEOUT), "the test never resumed the call"
        return False

    def resume(self):
        self.go.set()


def freed(obj):
    """Whether the C object is gone (the binding drops its pointer when it frees it)."""
    return obj._handle is None


def run_in_thread(fn):
    """Starts fn on a thread; the returned join() gives its result or re-raises its exception."""
    box = {}

    def body():
        try:
            box["result"] = fn()
        except BaseException as e:
            box["error"] = e
    thread = threading.Thread(target=body)
    thread.start()

    def join():
        thread.join(TIMEOUT)
        assert not thread.is_alive(), "the call did not return"
        if "error" in box:
            raise box["error"]
        return box["result"]
    return join


@pytest.fixture()
def tiny(dm):
    with dm.Model(TINY) as m:
        yield m


@pytest.fixture()
def image(dm):
    with dm.Image.open(IMAGE) as img:
        yield img


def test_model_close_during_a_session_call(dm, tiny, image):
    pause = Pause("vision")
    session = tiny.session(n_threads=2, progress=pause)
    join = run_in_thread(lambda: session.segment(image, CLASSES))
    assert pause.inside.wait(TIMEOUT)
    try:
        tiny.close()  # returns at once: the vision tower is between layers 1 and 2
        closed_mid_call = (tiny.closed, session.closed, freed(tiny), freed(session))
        with pytest.raises(dm.StateError, match="model is closed"):
            tiny.tokenize("cat")
    finally:
        pause.resume()
    result = join()  # the call finishes on the model it started with
    assert closed_mid_call == (True, True, False, False)
    assert result.labels.shape == (image.height, image.width)
    assert int(result.labels.max()) < len(CLASSES)
    assert ("vision", 4, 4) in pause.seen and ("llm", 5, 5) in pause.seen
    assert freed(session) and freed(tiny)  # freed by the call's end
    with pytest.raises(dm.StateError, match="session is closed"):
        session.segment(image, CLASSES)


def test_image_close_during_a_call(dm, tiny, image):
    with tiny.session(n_threads=2) as other:
        want = other.segment(image, CLASSES, evaluation=True)  # the dense CRF reads the pixels
    pause = Pause("llm")
    session = tiny.session(n_threads=2, progress=pause)
    join = run_in_thread(lambda: session.segment(image, CLASSES, evaluation=True))
    assert pause.inside.wait(TIMEOUT)
    try:
        image.close()  # the CRF after the LLM still needs the pixels
        closed_mid_call = (image.closed, freed(image))
        with pytest.raises(dm.StateError, match="image is closed"):
            image.width
    finally:
        pause.resume()
    got = join()
    assert closed_mid_call == (True, False) and freed(image)
    assert (got.labels == want.labels).all()


def test_session_close_from_inside_its_own_call(dm, tiny, image):
    pause = Pause("llm")
    session = tiny.session(n_threads=2, progress=pause)
    pause.on_pause = session.close  # a progress callback closing the session it reports on
    result = session.segment(image, CLASSES)
    assert result.labels.shape == (image.height, image.width)
    assert session.closed and freed(session) and not tiny.closed
    with pytest.raises(dm.StateError, match="session is closed"):
        session.n_past


def test_close_while_another_thread_encodes_in_a_loop(dm, tiny, image):
    """The issue's report: one thread encodes large images back to back, another closes the model.
    The encoder ends with StateError at its next call; nothing is freed under a running one."""
    big = image.resize(1024, 1024)
    session = tiny.session(n_threads=1, max_num_patches=4096)
    encoded = threading.Event()

    def encode_forever():
        count = 0
        while True:
            try:
                session.encode_image(big)
            except dm.StateError:
                return count
            count += 1
            encoded.set()
    join = run_in_thread(encode_forever)
    assert encoded.wait(TIMEOUT)
    tiny.close()
    assert join() >= 1
    assert freed(session) and freed(tiny)


def test_session_keeps_its_model_alive(dm, image):
    session = dm.Model(TINY).session(n_threads=2)  # the session holds the only reference
    gc.collect()
    assert not session.model.closed
    assert session.encode_image(image).n_tokens > 0
    model = session.model
    session.close()
    assert not model.closed and not freed(model)  # closing a session leaves its model open
    model.close()
    assert freed(model)


def test_model_closed_while_a_session_is_created(dm, tiny, monkeypatch):
    """Model.close() on another thread while dmllm_session_create runs: the new session must not
    be left open on a freed model; creating it raises StateError and both are freed."""
    create = dm.model._lib.dmllm_session_create

    def close_midway(*args):
        status = create(*args)
        closer = threading.Thread(target=tiny.close)
        closer.start()
        closer.join()
        return status
    monkeypatch.setattr(dm.model._lib, "dmllm_session_create", close_midway)
    with pytest.raises(dm.StateError, match="model is closed"):
        tiny.session(n_threads=2)
    assert freed(tiny)  # so was the session, which held it


def test_pixels_view_outlives_close(dm):
    img = dm.Image.open(IMAGE)
    want = img.to_array()
    pixels = img.pixels
    img.close()
    closed_with_a_view = (img.closed, freed(img))
    assert (pixels == want).all()  # the view still reads the library's memory
    assert closed_with_a_view == (True, False)
    del pixels
    gc.collect()
    assert freed(img)
