"""The benchmark corpora, deterministic and generated once per work folder.

    python3 bench/corpora.py WORKDIR NAME...     (names: app assets wide pyapp)

bench/build.sh and bench/baseline.sh generate theirs with this command;
bench/deploy.py imports `pyapp` and `make`.
"""
import os
import random
import shutil
import sys


def make(work, name, gen):
    """WORKDIR/NAME made by gen(path), once: a `.done` marker records it."""
    path = os.path.join(work, name)
    if not os.path.exists(path + ".done"):
        shutil.rmtree(path, ignore_errors=True)
        gen(path)
        open(path + ".done", "w").close()
    return path



def editable_copy(work, name, gen):
    """A scratch folder under WORKDIR holding an `app` copy of corpus NAME
    to edit: (scratch folder, app folder)."""
    import tempfile
    tmp = tempfile.mkdtemp(dir=work)
    app = os.path.join(tmp, "app")
    shutil.copytree(make(work, name, gen), app)
    return tmp, app

def app(root):
    """2,000 files of 200 B - 20 KiB in nested folders, ~5% duplicates."""
    r = random.Random(1)
    files = []
    for i in range(2000):
        d = os.path.join(root, "pkg%d" % (i % 17), "sub%d" % (i % 5))
        os.makedirs(d, exist_ok=True)
        if files and r.random() < 0.05:
            data = r.choice(files)
        else:
            # log-uniform sizes: many small files, a few large ones
            data = os.urandom(int(200 * (20 * 1024 / 200) ** r.random()))
            files.append(data)
        ext = r.choice([".bin", ".txt", ".json", ".dat"])
        open(os.path.join(d, "file%04d%s" % (i, ext)), "wb").write(data)


def assets(root):
    """64 files of 1 - 16 MiB, 400 MiB in total."""
    r = random.Random(2)
    os.makedirs(root)
    sizes = [r.randint(1, 16) for _ in range(64)]
    scale = 400 / sum(sizes)
    for i, s in enumerate(sizes):
        n = max(1 << 20, int(s * scale * (1 << 20)))
        with open(os.path.join(root, "asset%02d.bin" % i), "wb") as f:
            while n:
                k = min(n, 1 << 22)
                f.write(os.urandom(k))
                n -= k


def wide(root):
    """One folder of 20,000 files of 16 B - 2 KiB."""
    r = random.Random(3)
    os.makedirs(root)
    for i in range(20000):
        open(os.path.join(root, "f%05d" % i), "wb").write(os.urandom(r.randint(16, 2048)))


def pyapp(root, count=400, seed=4, funcs=(4, 30), packages=False):
    """Realistic .py modules (1-8 KiB of source with the defaults) in ten
    folders, for .mpy compilation; `packages` adds their `__init__.py`."""
    r = random.Random(seed)
    for i in range(count):
        d = os.path.join(root, "lib", "pkg%d" % (i % 10))
        os.makedirs(d, exist_ok=True)
        lines = ["# module %d" % i, "import math", ""]
        for j in range(r.randint(*funcs)):
            lines += [
                "def f%d(x, y=%d):" % (j, j),
                "    s = 0",
                "    for i in range(x):",
                "        s += (i * %d + y) %% 7" % (j + 1),
                "        if s > %d:" % (100 + j),
                "            s = math.sqrt(s) + %r" % (j / 3),
                "    return {'v': s, 'name': 'f%d', 'items': [1, 2, 3]}" % j,
                "",
                "class C%d:" % j,
                "    def __init__(self, a):",
                "        self.a = a",
                "    def m(self, b):",
                "        return [self.a + k for k in range(b)]",
                "",
            ]
        open(os.path.join(d, "mod%03d.py" % i), "w").write("\n".join(lines) + "\n")
    if packages:
        for p in range(10):
            open(os.path.join(root, "lib", "pkg%d" % p, "__init__.py"), "w").write("")
    open(os.path.join(root, "main.py"), "w").write("import math\nprint(math.pi)\n")


CORPORA = {"app": app, "assets": assets, "wide": wide, "pyapp": pyapp}

if __name__ == "__main__":
    work, names = sys.argv[1], sys.argv[2:]
    for name in names:
        make(work, name, CORPORA[name])
