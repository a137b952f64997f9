"""A volume mounted the way /etc/fstab does it: `mount -t fuse.pstorefs VOLUME
MOUNTPOINT -o config=...` (mount(8) runs mount.fuse3, which runs
`pstorefs VOLUME MOUNTPOINT -o ...` from the system PATH), and the same
two-argument form run directly.  Both must mount the named volume with the
root defaults (allow_other, default_permissions) and unmount cleanly."""

import os
import shutil
import subprocess

import pytest

from pstorelib import BUILD, run, wait_for

LINK = "/usr/local/bin/pstorefs"


def mounted(path):
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[1] == path and fields[2] == "fuse.pstorefs":
                return fields
    return None


@pytest.fixture
def cluster(make_cluster):
    c = make_cluster(vendors=2, copies=2)
    c.dev("down")  # keep FAT and vendors' data, drop the dev mount...
    c.dev("up", "--no-mount")  # ...and bring the daemons back without it
    return c


def client_conf(c):
    return os.path.join(c.dir, "client.conf")


def test_two_argument_form_names_the_volume(cluster, tmp_path):
    mnt = str(tmp_path / "m")
    os.mkdir(mnt)
    pstorefs = os.path.join(BUILD, "src", "fs", "pstorefs")
    try:
        run([pstorefs, "default", mnt, "-o",
             "config=%s,state=%s,cache=%s" % (client_conf(cluster), tmp_path / "st",
                                              tmp_path / "ca")], timeout=60)
        fields = wait_for(lambda: mounted(mnt), 20, what="the mount")
        assert "allow_other" in fields[3] and "default_permissions" in fields[3]
        with open(os.path.join(mnt, "hello"), "w") as f:
            f.write("fstab\n")
            f.flush()
            os.fsync(f.fileno())
        with open(os.path.join(mnt, "hello")) as f:
            assert f.read() == "fstab\n"
    finally:
        subprocess.run(["fusermount3", "-u", mnt], capture_output=True)
        subprocess.run(["fusermount3", "-uz", mnt], capture_output=True)
    assert not mounted(mnt)


def test_mount_t_fuse_pstorefs(cluster, tmp_path):
    if not shutil.which("mount.fuse3"):
        pytest.fail("mount.fuse3 missing: the fuse3 package is not installed")
    mnt = str(tmp_path / "m")
    os.mkdir(mnt)
    made_link = False
    if not os.path.exists(LINK):
        os.symlink(os.path.join(BUILD, "src", "fs", "pstorefs"), LINK)
        made_link = True
    try:
        run(["mount", "-t", "fuse.pstorefs", "default", mnt, "-o",
             "config=%s,state=%s,cache=%s" % (client_conf(cluster), tmp_path / "st",
                                              tmp_path / "ca")], timeout=60)
        assert wait_for(lambda: mounted(mnt), 20, what="the mount")[0] == "pstore:default"
        os.mkdir(os.path.join(mnt, "d"))
        assert os.listdir(mnt) == ["d"]
        run(["umount", mnt], timeout=60)
        wait_for(lambda: not mounted(mnt), 20, what="the unmount")
    finally:
        subprocess.run(["fusermount3", "-uz", mnt], capture_output=True)
        if made_link:
            os.unlink(LINK)
