"""This process's memory, as the operating system or the GPU driver counts it.

A probe reports the memory now and the highest since its last ``reset_peak``, so each phase of a
trial (building, collecting, updating) has a peak of its own.

On the CPU: resident memory, and the kernel's high-water mark of it (VmHWM, reset through
/proc/self/clear_refs). On CUDA:
the process's device memory as NVML reports it (the CUDA context, torch's caching allocator, warp's
allocations, cuDNN workspaces: everything), sampled every few milliseconds by a thread, because
NVML keeps no peak. torch's own peak of reserved memory is folded in, so a spike between two samples
is not missed: the last reading, less what torch holds now, plus the most torch ever held.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import psutil
import torch

SAMPLE_SECONDS = 0.005


class CpuMemoryProbe:
    source = "peak resident memory of the process (the kernel's VmHWM)"

    def __init__(self):
        self._process = psutil.Process()

    def current(self) -> int:
        return self._process.memory_info().rss

    def peak(self) -> int:
        status = Path("/proc/self/status").read_text()
        return max(int(status.split("VmHWM:")[1].split()[0]) * 1024, self.current())  # kB in the file

    def reset_peak(self) -> None:
        Path("/proc/self/clear_refs").write_text("5")  # Linux >= 4.0: VmHWM back to the current size

    def close(self) -> None:
        pass


class NvmlMemoryProbe:
    """Device memory of this process on ``device`` (a CUDA torch.device), sampled in the background."""

    source = "peak device memory of the process as NVML reports it (CUDA context included)"

    def __init__(self, device: torch.device):
        import pynvml

        self._nvml = pynvml
        pynvml.nvmlInit()
        index = device.index if device.index is not None else torch.cuda.current_device()
        try:  # torch's index counts the visible GPUs only; the UUID names the same GPU for NVML
            self._handle = pynvml.nvmlDeviceGetHandleByUUID(f"GPU-{torch.cuda.get_device_properties(index).uuid}")
        except pynvml.NVMLError:
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        self._device, self._pid = device, os.getpid()
        # Where the driver hides our pid (a container's pid namespace), the device's use above its
        # use before this process touched it stands in.
        self._baseline = pynvml.nvmlDeviceGetMemoryInfo(self._handle).used
        self._highest, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _reading(self) -> int:
        nvml = self._nvml
        for proc in nvml.nvmlDeviceGetComputeRunningProcesses(self._handle):
            if proc.pid == self._pid and proc.usedGpuMemory is not None:
                return int(proc.usedGpuMemory)
        return max(0, nvml.nvmlDeviceGetMemoryInfo(self._handle).used - self._baseline)

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self._highest = max(self._highest, self._reading())

    def current(self) -> int:
        torch.cuda.synchronize(self._device)
        return self._reading()

    def peak(self) -> int:
        now = self.current()
        unseen = max(0, torch.cuda.max_memory_reserved(self._device) - torch.cuda.memory_reserved(self._device))
        return max(self._highest, now + unseen)

    def reset_peak(self) -> None:
        torch.cuda.synchronize(self._device)
        torch.cuda.reset_peak_memory_stats(self._device)
        self._highest = self._reading()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._nvml.nvmlShutdown()


def memory_probe(device: torch.device):
    return NvmlMemoryProbe(device) if device.type == "cuda" else CpuMemoryProbe()
