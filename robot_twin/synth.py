"""
Synthetic camera data of a robot as a COCO dataset: many randomized renders, in parallel.

:func:`generate` renders ``samples`` views of a URDF (:class:`twin_sim.camera.RobotScene`, one
scene per worker process) and writes::

    DIR/rgb/000000.png          RGB, 8 bit
    DIR/depth/000000.png        depth, 16-bit PNG, millimetres (0: nothing hit or > 65.5 m)
    DIR/annotations.json        COCO: images, annotations (per-link masks as RLE, boxes, areas),
                                categories (one per robot link)
    DIR/joint_states.csv        image id, file, then one column per joint (rad)
    DIR/preview.png             a grid of the first samples with their masks

Each COCO image also carries the camera (``K`` intrinsics in pixels, OpenCV convention;
``world_from_camera`` pose), the joint state and the drawn light. Sample ``i`` draws from
``SeedSequence(seed, spawn_key=(i,))``: the dataset depends only on the seed, not on the number
of workers. Masks are encoded with pycocotools, so ``pycocotools.coco.COCO`` loads the file.
"""
import concurrent.futures
import csv
from dataclasses import dataclass
import json
import multiprocessing
from pathlib import Path
import re
import time
import warnings

import numpy as np

__all__ = ['MAX_PIXELS', 'MAX_SIDE', 'SynthError', 'SynthResult', 'generate', 'size_problem']

#: Largest image side rendered, pixels.
MAX_SIDE = 8192
#: Largest image rendered, pixels (8K UHD).
MAX_PIXELS = 8192 * 4320

_SCENE = {}


class SynthError(ValueError):
    """Bad input to :func:`generate`; the message says what to change."""


@dataclass
class SynthResult:
    """
    What :func:`generate` wrote.

    Attributes
    ----------
    output : Path
    images : int
    annotations : int
        Link masks in the dataset.
    wall_s : float
        Wall time of the whole job, s.
    images_per_s : float

    """

    output: Path
    images: int
    annotations: int
    wall_s: float
    images_per_s: float


def _scene(urdf, width, height):
    from twin_sim.camera import RobotScene
    key = (str(urdf), width, height)
    if key not in _SCENE:
        for old in _SCENE.values():
            old.close()
        _SCENE.clear()
        _SCENE[key] = RobotScene(urdf, width, height)
    return _SCENE[key]


def _render_one(job):
    """Render and write sample ``index``; return its COCO image and annotations (no ids)."""
    from pycocotools import mask as mask_utils
    from PIL import Image
    urdf, width, height, seed, index, out = job
    scene = _scene(urdf, width, height)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
    sample = scene.sample(rng)
    name = f'{index:06d}.png'
    Image.fromarray(sample.rgb).save(Path(out) / 'rgb' / name)
    depth = np.where(np.isfinite(sample.depth_m), np.rint(sample.depth_m * 1000.0), 0.0)
    depth = np.where(depth > 65535, 0, depth).astype(np.uint16)
    Image.fromarray(depth).save(Path(out) / 'depth' / name)
    annotations = []
    for link, mask in sample.link_masks.items():
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        annotations.append({
            'link': link, 'iscrowd': 0, 'area': float(mask_utils.area(rle)),
            'bbox': [float(v) for v in mask_utils.toBbox(rle)],
            'segmentation': {'size': [int(s) for s in rle['size']],
                             'counts': rle['counts'].decode('ascii')}})
    image = {'file_name': f'rgb/{name}', 'depth_file': f'depth/{name}', 'width': width,
             'height': height, 'sample_index': index, 'depth_unit': 'mm',
             'camera': {'K': sample.K.tolist(), 'fov_deg': sample.fov_deg,
                        'world_from_camera': sample.world_from_camera.tolist(),
                        'convention': 'opencv'},
             'joint_state': {'name': list(sample.joint_names), 'position': sample.q.tolist()},
             'light': sample.light}
    return image, annotations


def size_problem(width, height):
    """
    Return why an image of ``width`` x ``height`` pixels is not rendered, or None.

    The renderer holds colour, depth and segmentation buffers of the image (tens of bytes per
    pixel, per worker): a side above :data:`MAX_SIDE` or more than :data:`MAX_PIXELS` pixels
    would exhaust memory (100000 x 100000 aborted the process).
    """
    for name, value in (('width', width), ('height', height)):
        if value > MAX_SIDE:
            return f'--{name} {value} is above {MAX_SIDE} pixels, the largest side rendered'
    if width * height > MAX_PIXELS:
        return (f'--width {width} x --height {height} is {width * height} pixels, above the '
                f'{MAX_PIXELS} (8192 x 4320) rendered')
    return None


def _check(urdf, samples, width, height, workers, seed):
    if not Path(urdf).is_file():
        raise SynthError(f'URDF not found: {urdf}')
    for name, value, low in (('samples', samples, 1), ('width', width, 8), ('height', height, 8),
                             ('workers', workers, 1), ('seed', seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise SynthError(f'{name} must be an integer >= {low}, got {value!r}')
    problem = size_problem(int(width), int(height))
    if problem:
        raise SynthError(problem)


def generate(urdf, samples, output, *, width=640, height=480, seed=0, workers=1,
             progress=False, preview=True):
    """
    Render a randomized COCO dataset of a robot (see the module docstring).

    Parameters
    ----------
    urdf : str or Path
        The robot (visual geometry rendered).
    samples : int
        Images to render.
    output : str or Path
        Directory (created); existing files of the same names are replaced, and images of
        an earlier, larger dataset written there (``rgb/NNNNNN.png``, ``depth/NNNNNN.png``
        beyond this one's) are removed, so that the directory holds what
        ``annotations.json`` lists.
    width, height : int
        Image size, pixels.
    seed : int
        Randomization seed (>= 0).
    workers : int
        Local processes (1: this process).
    progress : bool
        Show a tqdm progress bar (one step per image).
    preview : bool
        Also write ``preview.png``.

    Returns
    -------
    SynthResult

    Raises
    ------
    SynthError
        Bad arguments or a robot that cannot be rendered.

    """
    from twin_sim.camera import CameraError
    _check(urdf, samples, width, height, workers, seed)
    out = Path(output)
    for sub in ('rgb', 'depth'):
        (out / sub).mkdir(parents=True, exist_ok=True)
    jobs = [(str(Path(urdf).resolve()), int(width), int(height), int(seed), i, str(out))
            for i in range(int(samples))]
    t0 = time.perf_counter()
    try:
        rendered = _map(jobs, int(workers), progress)
    except CameraError as exc:
        raise SynthError(str(exc)) from exc
    wall = time.perf_counter() - t0
    dataset = _coco(rendered, urdf)
    _remove_stale_images(out, dataset)
    (out / 'annotations.json').write_text(json.dumps(dataset))
    _joint_states(dataset, out / 'joint_states.csv')
    if preview:
        _preview(dataset, out, out / 'preview.png')
    return SynthResult(out, len(dataset['images']), len(dataset['annotations']), wall,
                       len(jobs) / wall if wall > 0 else float('nan'))


def _remove_stale_images(out, dataset):
    """Delete ``rgb/`` and ``depth/`` images of this command's naming that ``dataset`` lacks."""
    keep = {image['file_name'] for image in dataset['images']}
    keep |= {image['depth_file'] for image in dataset['images']}
    for sub in ('rgb', 'depth'):
        for path in (out / sub).glob('*.png'):
            if re.fullmatch(r'\d{6}\.png', path.name) and f'{sub}/{path.name}' not in keep:
                path.unlink()


def _map(jobs, workers, progress):
    from tqdm import tqdm
    bar = tqdm(total=len(jobs), unit='image', desc='synth', disable=not progress, leave=False)
    try:
        if workers == 1 or len(jobs) == 1:
            out = []
            for job in jobs:
                out.append(_render_one(job))
                bar.update(1)
            return out
        context = multiprocessing.get_context('spawn')
        with concurrent.futures.ProcessPoolExecutor(max_workers=min(workers, len(jobs)),
                                                    mp_context=context) as pool:
            out = []
            for item in pool.map(_render_one, jobs, chunksize=max(1, len(jobs) // (8 * workers))):
                out.append(item)
                bar.update(1)
            return out
    finally:
        bar.close()


def _coco(rendered, urdf):
    """Build the COCO document: ids for images and masks, a category per URDF link (file order)."""
    import xml.etree.ElementTree as ElementTree
    links = [link.get('name') for link in ElementTree.parse(str(urdf)).getroot().findall('link')]
    category = {name: k + 1 for k, name in enumerate(links)}
    images, annotations = [], []
    for image_id, (image, anns) in enumerate(rendered, start=1):
        images.append(dict(image, id=image_id))
        for a in anns:
            entry = {k: v for k, v in a.items() if k != 'link'}
            annotations.append(dict(entry, id=len(annotations) + 1, image_id=image_id,
                                    category_id=category[a['link']]))
    return {'info': {'description': f'robot_twin synthetic renders of {Path(urdf).name}',
                     'version': '1'},
            'images': images, 'annotations': annotations,
            'categories': [{'id': i, 'name': name, 'supercategory': 'robot_link'}
                           for name, i in category.items()]}


def _joint_states(dataset, path):
    names = dataset['images'][0]['joint_state']['name']
    with open(path, 'w', newline='', encoding='utf-8') as handle:
        writer = csv.writer(handle)
        writer.writerow(['image_id', 'file_name'] + [f'{j}.position' for j in names])
        for image in dataset['images']:
            writer.writerow([image['id'], image['file_name']]
                            + [repr(v) for v in image['joint_state']['position']])


def _preview(dataset, root, path, count=8):
    """Draw a grid of the first images with their link masks in colour."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from PIL import Image
    from pycocotools import mask as mask_utils
    images = dataset['images'][:count]
    cols = min(4, len(images))
    rows = (len(images) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    colours = plt.get_cmap('tab20')
    for ax, image in zip(axes.flat, images):
        rgb = np.asarray(Image.open(root / image['file_name']), dtype=float) / 255.0
        overlay = rgb.copy()
        for a in dataset['annotations']:
            if a['image_id'] == image['id']:
                with warnings.catch_warnings():     # pycocotools under numpy 2
                    warnings.simplefilter('ignore', DeprecationWarning)
                    mask = mask_utils.decode(a['segmentation']).astype(bool)
                overlay[mask] = 0.45 * overlay[mask] + 0.55 * np.array(
                    colours((a['category_id'] - 1) % 20)[:3])
        ax.imshow(overlay)
        ax.set_title(f"#{image['id']}", fontsize=8)
    for ax in axes.flat:
        ax.axis('off')
    fig.suptitle('synthetic renders with per-link masks', fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
