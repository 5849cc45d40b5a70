"""The video side: frames in, tracked poses and files out (``pose-demo``, the Python API's streams).

- :mod:`pose.video.sources`: images, folders, globs, video files, webcams and streams as frames;
- :mod:`pose.video.detection`: person detectors (YOLOX-Nano offline, torchvision, JSON, whole image);
- :mod:`pose.video.tracking`: persistent track ids; :mod:`pose.video.smoothing`: One-Euro filters;
- :mod:`pose.video.render`: skeletons, FPS and the untrained-weights banner;
- :mod:`pose.video.records`: JSON-lines frame records (schema v1), CSV, COCO results;
- :mod:`pose.video.pipeline`: the loop wiring them to one :class:`pose.predictor.TopDownPredictor`.
"""
