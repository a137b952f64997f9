"""Issue 2, item 8: `df` on the mount shows the capacity the vendors offer."""

from pstorelib import run

GiB = 1 << 30


def test_df_shows_vendor_capacity(make_cluster):
    c = make_cluster(vendors=4, copies=2, capacity=GiB)
    vs = c.vendors()
    offered = sum(v["capacity"] for v in vs.values())
    assert offered == 4 * 2 * GiB, "vendors offer %d bytes" % offered
    out = run(["df", "-B1", "--output=size,avail", c.mount]).stdout.split("\n")[1].split()
    size, avail = int(out[0]), int(out[1])
    assert abs(size - offered) <= offered // 100, "df size %d, vendors offer %d" % (size, offered)
    assert 0 < avail <= size
