"""Write tests/data/onehand10k/hand5.json: OneHand10K's sample reduced to the 5 points of hand5.yaml.

Run from the repository root: ``python tests/data/keypoints/make_hand5.py`` (the output is checked in).
"""
import json
from pathlib import Path

KEEP = (0, 8, 12, 16, 20)  # wrist, forefinger4, middle_finger4, ring_finger4, pinky_finger4 (OneHand10K order)

root = Path(__file__).resolve().parents[1] / "onehand10k"
data = json.loads((root / "test_onehand10k.json").read_text())
for ann in data["annotations"]:
    kp = ann["keypoints"]
    ann["keypoints"] = [v for k in KEEP for v in kp[3 * k:3 * k + 3]]
for cat in data["categories"]:
    cat["keypoints"] = [cat["keypoints"][k] for k in KEEP]
    cat["skeleton"] = [[1, 2], [1, 3], [1, 4], [1, 5]]  # 1-based, as COCO files write it
(root / "hand5.json").write_text(json.dumps(data))
