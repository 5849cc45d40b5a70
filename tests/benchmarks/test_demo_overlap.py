"""The demo benchmark's overlapped detection: same detections, same order, frame t+1 started early."""
import threading
import time

from benchmarks.demo import detections_in_order


def test_overlap_yields_the_sequential_detections_in_order():
    frames = list(range(7))
    detector = lambda f: [f * 10]  # noqa: E731
    assert list(detections_in_order(detector, frames, overlap=True)) == [[f * 10] for f in frames]
    assert list(detections_in_order(detector, frames, overlap=False)) == [[f * 10] for f in frames]
    assert list(detections_in_order(detector, [], overlap=True)) == []


def test_next_frame_is_detected_while_the_caller_works_on_this_one():
    started = []
    main = threading.get_ident()

    def detector(frame):
        started.append((frame, threading.get_ident() != main))
        time.sleep(0.01)
        return frame

    seen = []
    for found in detections_in_order(detector, [0, 1, 2], overlap=True):
        time.sleep(0.05)  # the pose model on frame `found`: the next detection must be under way already
        seen.append((found, [f for f, _ in started]))
    assert [f for f, _ in seen] == [0, 1, 2]
    assert seen[0][1] == [0, 1] and seen[1][1] == [0, 1, 2]
    assert all(worker for _, worker in started)
