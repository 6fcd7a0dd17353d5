"""Drive `bench/ports.sh`: the redeploy after one module changed, on the
emulated board model of each port's ROM partition (../shared/device,
MODELS.md), `romfs deploy` and `mpremote romfs deploy` side by side: bytes
sent over the serial link (bench/boardproxy.py's counting proxy), and what
the model counts: sector erases, program operations, write calls, and every
rule a real part would punish. From the counts and each part's datasheet
figures (FIGURES below), the time the flash itself would take on the real
part. Then the edit loop on the writable board: `romfs query`, a one-file
redeploy and a no-op deploy (reset included), and mpremote's deploy.

Usage: python ports.py WORKDIR ROMFS MPREMOTE MPY_CROSS DEVICE_DIR RUNS
"""
import ast, json, os, shutil, statistics, subprocess, sys, time

WORK, ROMFS, MPREMOTE, MPY_CROSS, DEVICE_DIR, RUNS = sys.argv[1:7]
RUNS = int(RUNS)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import boardproxy  # noqa: E402
import corpora  # noqa: E402

MODELS = ["rp2", "esp32", "stm32-internal", "alif-mram"]
# Typical erase and program times of the part each model copies (seconds per
# operation, as the model counts operations), from the datasheets named.
FIGURES = {
    "rp2": ("W25Q16JV (Raspberry Pi Pico): 4 KiB sector erase 45 ms, 256 B page program 0.4 ms", 45e-3, 0.4e-3),
    "esp32": ("W25Q32JV-class SPI flash (ESP32 modules): 4 KiB sector erase 45 ms, 256 B page program 0.4 ms", 45e-3, 0.4e-3),
    "stm32-internal": ("STM32H743 internal flash (DS12110): 128 KiB sector erase 1 s (x64), 256-bit flash word program 16 us", 1.0, 16e-6),
    "alif-mram": ("Alif Ensemble MRAM: no erase; no write time is published, so none is estimated", 0.0, None),
}
RULES_OK = ("sector_erases", "page_programs", "program_calls")


def app(name, edit):
    """A 60-module app (packages, bytecode); `edit` changes one module's
    constant, keeping its size."""
    root = os.path.join(WORK, name)
    if os.path.exists(root):
        shutil.rmtree(root)
    corpora.pyapp(root, 60, 4, (4, 30), packages=True)
    if edit:
        path = os.path.join(root, "lib", "pkg7", "mod037.py")
        text = open(path).read().replace("s = 0", "s = 1", 1)
        open(path, "w").write(text)
    return root


def counters(board):
    out = board.exec("import vfs\nprint(vfs.rom_ioctl(99))").strip()
    return ast.literal_eval(out)


def deploy_cmd(tool, board, src):
    if tool == "romfs":
        return [ROMFS, "deploy", src, "--port", board.port, "--no-reset", "--mpy-cross", MPY_CROSS]
    return [MPREMOTE, "connect", board.port, "resume", "romfs", "deploy", src]


def redeploy(board, tool, v1, v2):
    """Deploy v1, then measure deploying v2."""
    out = subprocess.run(deploy_cmd(tool, board, v1), capture_output=True, text=True, timeout=1200)
    if out.returncode != 0:
        return {"error": (out.stdout + out.stderr).strip().splitlines()[-1:]}
    board.exec("import vfs\nvfs.rom_ioctl(98)")
    sent0 = board.to_board
    t = time.monotonic()
    out = subprocess.run(deploy_cmd(tool, board, v2), capture_output=True, text=True, timeout=1200)
    wall = time.monotonic() - t
    time.sleep(0.2)
    sent = board.to_board - sent0
    if out.returncode != 0:
        return {"error": (out.stdout + out.stderr).strip().splitlines()[-1:]}
    c = counters(board)
    violations = {k: v for k, v in c.items() if k not in RULES_OK and v}
    return {"wall": wall, "sent": sent, "erases": c.get("sector_erases", 0),
            "programs": c.get("page_programs", 0), "calls": c.get("program_calls", 0),
            "violations": violations}


def median_of(runs):
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[0]
    m = dict(ok[0])
    for k in ("wall", "sent", "erases", "programs", "calls"):
        m[k] = statistics.median(r[k] for r in ok)
    m["violations"] = {k: v for r in ok for k, v in r["violations"].items()}
    return m


def flash_time(model, r):
    _, erase, program = FIGURES[model]
    if program is None or "error" in r:
        return None
    return r["erases"] * erase + r["programs"] * program


def edit_loop():
    board = boardproxy.Board(WORK, os.path.join(DEVICE_DIR, "micropython-mps2-an385-romfs-rw.elf"), MPREMOTE)
    src = os.path.join(WORK, "small")
    if os.path.exists(src):
        shutil.rmtree(src)
    shutil.copytree(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "app"), src)
    subprocess.run([ROMFS, "deploy", src, "--port", board.port, "--mpy-cross", MPY_CROSS], check=True, capture_output=True)
    rows = {"query": [], "one-file redeploy": [], "no-op deploy": [], "mpremote deploy": []}
    for i in range(RUNS):
        def timed(cmd):
            t = time.monotonic()
            subprocess.run(cmd, check=True, capture_output=True, timeout=600)
            return time.monotonic() - t
        rows["query"].append(timed([ROMFS, "query", "--port", board.port]))
        with open(os.path.join(src, "config.json"), "w") as f:
            f.write('{"run": %d}\n' % i)
        rows["one-file redeploy"].append(timed([ROMFS, "deploy", src, "--port", board.port, "--mpy-cross", MPY_CROSS]))
        rows["no-op deploy"].append(timed([ROMFS, "deploy", src, "--port", board.port, "--mpy-cross", MPY_CROSS]))
        rows["mpremote deploy"].append(timed([MPREMOTE, "connect", board.port, "resume", "romfs", "deploy", src]))
    board.close()
    return {k: statistics.median(v) for k, v in rows.items()}


def main():
    os.makedirs(WORK, exist_ok=True)
    v1, v2 = app("v1", False), app("v2", True)
    results = {}
    for model in MODELS:
        elf = os.path.join(DEVICE_DIR, "micropython-mps2-an385-%s-model.elf" % model)
        board = boardproxy.Board(WORK, elf, MPREMOTE)
        results[model] = {}
        for tool in ("romfs", "mpremote"):
            results[model][tool] = median_of([redeploy(board, tool, v1, v2) for _ in range(RUNS)])
        board.close()
    loop = edit_loop()
    json.dump({"models": results, "edit_loop": loop}, open(os.path.join(WORK, "results.json"), "w"), indent=1)

    print("\n### Redeploy after one module changed (60-module app), per port model, medians of %d" % RUNS)
    print("\n| model | tool | bytes sent | sector erases | program operations | write calls | rule violations | flash time on the real part |")
    print("|---|---|---|---|---|---|---|---|")
    for model in MODELS:
        for tool in ("romfs", "mpremote"):
            r = results[model][tool]
            if "error" in r:
                print("| %s | %s | fails: %s | | | | | |" % (model, tool, " ".join(r["error"]).replace("|", "/")))
                continue
            t = flash_time(model, r)
            print("| %s | %s | %d | %d | %d | %d | %s | %s |" % (
                model, tool, r["sent"], r["erases"], r["programs"], r["calls"],
                ", ".join("%s %s" % kv for kv in r["violations"].items()) or "none",
                "%.2f s" % t if t is not None else "n/a"))
    print("\nFigures used:")
    for model in MODELS:
        print("- %s: %s." % (model, FIGURES[model][0]))
    print("\n### Edit loop on the writable board (examples/app), medians of %d, wall seconds (emulated board; proxy holds the port)" % RUNS)
    print("\n| operation | seconds | ÷ query |")
    print("|---|---|---|")
    for k, v in loop.items():
        print("| %s | %.2f | %.2f |" % (k, v, v / loop["query"]))


main()
