"""Write-behind (docs/semantics.md, "Write-behind"): new data waits for the
writes to pause, or for writeback_delay_ms, before it is uploaded; fsync
never waits; a sequential writer's complete chunks stream at once."""

import mmap
import os
import threading
import time

from pstorelib import MiB, set_client_option, wait_for


def dirty(c, path):
    return any(ch.get("dirty") for ch in c.locate(path))


def committed(c, path):
    chunks = c.locate(path)
    return bool(chunks) and not any(ch.get("dirty") for ch in chunks)


def cluster_with_delay(make_cluster, delay_ms):
    """A cluster whose mount has writeback_delay_ms = delay_ms."""
    c = make_cluster(vendors=3, copies=2)
    set_client_option(c, "writeback_delay_ms", str(delay_ms))
    c.stop("pstorefs")
    c.start("pstorefs")
    return c


class Busy:
    """Creates a file every 0.1 s in MOUNT/busy: the changes never pause for
    the 1 s after which the flusher would upload anyway."""

    def __init__(self, mount):
        self.dir = os.path.join(mount, "busy")
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self):
        i = 0
        while not self.stop.is_set():
            open(os.path.join(self.dir, "n%05d" % i), "wb").close()
            i += 1
            time.sleep(0.1)

    def alive(self):
        return self.thread.is_alive()

    def __enter__(self):
        os.makedirs(self.dir, exist_ok=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def test_paused_writes_are_uploaded_without_sync(make_cluster):
    c = make_cluster(vendors=3, copies=2)
    paths = []
    for i in range(40):
        p = os.path.join(c.mount, "f%02d" % i)
        with open(p, "wb") as f:
            f.write(os.urandom(3000 + i))
        paths.append(p)
    # no fsync, no sync: the flusher uploads once the writes have paused (1 s)
    wait_for(lambda: all(committed(c, p) for p in paths), 30, 0.5,
             "the files uploaded after the writes paused")


def test_fsync_does_not_wait_for_write_behind(make_cluster):
    c = cluster_with_delay(make_cluster, 600000)
    target = os.path.join(c.mount, "target")
    with open(target, "wb") as f:
        f.write(b"x" * 5000)
        f.flush()
        t0 = time.monotonic()
        os.fsync(f.fileno())
        took = time.monotonic() - t0
    assert committed(c, target), "fsync returned before the commit"
    assert took < 30, "fsync took %.1f s" % took


def test_continuous_writer_is_bounded_by_writeback_delay(make_cluster):
    c = cluster_with_delay(make_cluster, 2000)
    first = os.path.join(c.mount, "first")
    with open(first, "wb") as f:
        f.write(b"first file\n")
    with Busy(c.mount) as busy:
        seen_committed_while_busy = False
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and busy.alive():
            if committed(c, first):
                seen_committed_while_busy = busy.alive()
                break
            time.sleep(0.3)
    assert seen_committed_while_busy, \
        "a change waited more than writeback_delay_ms while writes went on"


def test_sequential_writer_streams_complete_chunks(make_cluster):
    c = cluster_with_delay(make_cluster, 600000)
    path = os.path.join(c.mount, "big")
    buf = mmap.mmap(-1, 4 * MiB)  # page-aligned, for O_DIRECT
    buf.write(os.urandom(4 * MiB))
    with Busy(c.mount) as busy:
        # O_DIRECT: each write reaches pstorefs before the next (the kernel's
        # writeback would hand the pages over later, in its own order)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o644)
        try:
            for _ in range(6):
                assert os.write(fd, buf) == 4 * MiB
            # changes never pause and the delay is 10 minutes, yet the
            # complete chunks below the one being written go up at once
            try:
                wait_for(lambda: sum(1 for ch in c.locate(path) if not ch.get("dirty")) >= 4,
                         60, 0.3, "complete chunks uploaded while the file is open")
            except AssertionError:
                print(c.locate(path))
                raise
            assert busy.alive()
            assert dirty(c, path), "the chunk being written is not dirty any more"
        finally:
            os.close(fd)
