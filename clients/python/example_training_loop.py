#!/usr/bin/env python3
"""Send a checkpoint to farmsd every N steps of a PyTorch training loop.

    FARMSD_URL=http://farmsd:8080 python3 example_training_loop.py --run my-run --every 100

Every `--every` steps the model's state dict is saved with torch.save and
uploaded by a background thread (training does not wait for the upload; one
checkpoint may wait behind the one being sent, later ones are skipped until
it goes). When the analysis is done the thread prints the layers
that farmsd flags (alpha < 2 over-trained, alpha > 6 under-trained); open
http://farmsd:8080/ for the dashboard. Needs torch; farmsd_client.py needs
only the standard library.
"""

import argparse
import os
import queue
import tempfile
import threading

import torch
from torch import nn

from farmsd_client import FarmsdClient, FarmsdError


class FarmsdReporter:
    """Uploads checkpoints from a background thread, one at a time."""

    def __init__(self, client, run, wait=True):
        self.client, self.run, self.wait = client, run, wait
        self.q = queue.Queue(maxsize=1)
        self.dir = tempfile.mkdtemp(prefix="farmsd-")
        self.t = threading.Thread(target=self._loop, daemon=True)
        self.t.start()

    def submit(self, step, model):
        """Save `model` now (on the training thread) and queue its upload."""
        if self.q.full():
            print(f"farmsd: step {step}: uploads are behind, skipped")
            return
        path = os.path.join(self.dir, f"step{step:08d}.pt")
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)
        self.q.put((step, path))

    def close(self):
        self.q.put(None)
        self.t.join()

    def _loop(self):
        while (item := self.q.get()) is not None:
            step, path = item
            try:
                job = self.client.post_checkpoint(self.run, step, path)
                if self.wait:
                    job = self.client.wait_job(job, timeout=3600, poll=2.0)
                    self._report(step, job)
            except FarmsdError as e:  # timeouts included (category "timeout")
                print(f"farmsd: step {step}: {e}")
            finally:
                os.remove(path)

    def _report(self, step, job):
        if job["state"] != "succeeded":
            print(f"farmsd: step {step}: job {job['id']} {job['state']}: {job.get('error')}")
            return
        layers = self.client.checkpoint(self.run, step)["layers"]
        flagged = [l for l in layers if l.get("warning")]
        print(f"farmsd: step {step}: {len(layers)} layers, {len(flagged)} flagged")
        for l in flagged:
            print(f"  {l['name']}: alpha {l['alpha']:.2f} ({l['warning']})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default="example")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--every", type=int, default=100)
    a = ap.parse_args()

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                          nn.Linear(256, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(2048, 64), torch.randint(0, 10, (2048,))
    reporter = FarmsdReporter(FarmsdClient(), a.run)
    try:
        for step in range(a.steps + 1):
            i = torch.randint(0, len(x), (128,))
            loss = nn.functional.cross_entropy(model(x[i]), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % a.every == 0:
                print(f"step {step}: loss {loss.item():.3f}")
                reporter.submit(step, model)
    finally:
        reporter.close()


if __name__ == "__main__":
    main()
