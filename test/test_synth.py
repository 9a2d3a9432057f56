"""robot-twin synth: randomized renders as a COCO dataset that pycocotools loads."""
import json
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
import pytest
from robot_twin.synth import generate, SynthError
from robot_twin.synth_cli import main as synth_main
from twin_sim.urdf_model import RobotModel

ARM = Path(__file__).resolve().parents[1] / 'urdf' / 'robot_twin_arm.urdf'
#: pycocotools 2.0.11 decodes through a numpy-1 style __array__ (a warning under numpy 2)
pytestmark = pytest.mark.filterwarnings('ignore:__array__ implementation:DeprecationWarning')


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp('synth')
    result = generate(ARM, 4, out, width=200, height=150, seed=3, workers=2)
    return out, result


def test_coco_dataset_loads_and_masks_match_their_boxes(dataset):
    out, result = dataset
    coco = COCO(str(out / 'annotations.json'))
    assert result.images == len(coco.getImgIds()) == 4
    names = [c['name'] for c in coco.loadCats(coco.getCatIds())]
    assert names[:2] == ['base_link', 'link1'] and 'tool' in names
    assert len(coco.getAnnIds()) == result.annotations > 4 * 5
    for ann in coco.loadAnns(coco.getAnnIds()):
        mask = coco.annToMask(ann).astype(bool)
        assert mask.sum() == ann['area'] > 0
        ys, xs = np.nonzero(mask)
        x, y, w, h = ann['bbox']
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x, y, x + w, y + h)
    # masks of one image never overlap (one link per pixel)
    for image_id in coco.getImgIds():
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        total = sum(coco.annToMask(a).astype(int) for a in anns)
        assert total.max() == 1
    assert (out / 'preview.png').stat().st_size > 10_000
    rows = (out / 'joint_states.csv').read_text().splitlines()
    assert len(rows) == 5 and rows[0].startswith('image_id,file_name,joint1.position')


def test_camera_intrinsics_pose_and_joint_state_agree_with_the_pixels(dataset):
    """Project each link's frame (pinocchio, from the joint state) into its mask's box."""
    out, _ = dataset
    doc = json.loads((out / 'annotations.json').read_text())
    model = RobotModel.from_urdf(ARM)
    names = {c['id']: c['name'] for c in doc['categories']}
    inside = checked = 0
    for image in doc['images']:
        K = np.array(image['camera']['K'])
        camera_from_world = np.linalg.inv(np.array(image['camera']['world_from_camera']))
        q = np.array(image['joint_state']['position'])
        depth = np.asarray(Image.open(out / image['depth_file']), dtype=float) / 1000.0
        for ann in doc['annotations']:
            if ann['image_id'] != image['id'] or ann['area'] < 30:
                continue
            origin = model.frame_pose(q, names[ann['category_id']])[:3, 3]
            p = camera_from_world[:3, :3] @ origin + camera_from_world[:3, 3]
            u, v = (K @ (p / p[2]))[:2]
            x, y, w, h = ann['bbox']
            checked += 1
            inside += (x - 10 <= u <= x + w + 10) and (y - 10 <= v <= y + h + 10)
            mask = mask_utils.decode(ann['segmentation']).astype(bool)
            # the visible surface of a link lies within its size of its frame's depth
            assert abs(np.median(depth[mask]) - p[2]) < 0.3
    assert checked > 10 and inside >= 0.8 * checked


def test_the_same_seed_gives_the_same_dataset_on_any_worker_count(dataset, tmp_path):
    out, _ = dataset
    again = generate(ARM, 2, tmp_path / 'one', width=200, height=150, seed=3, workers=1,
                     preview=False)
    assert again.images == 2
    a = json.loads((out / 'annotations.json').read_text())
    b = json.loads((tmp_path / 'one' / 'annotations.json').read_text())
    assert a['images'][:2] == b['images']
    assert [x for x in a['annotations'] if x['image_id'] <= 2] == b['annotations']
    assert np.array_equal(np.asarray(Image.open(out / 'rgb' / '000001.png')),
                          np.asarray(Image.open(tmp_path / 'one' / 'rgb' / '000001.png')))


def test_a_smaller_dataset_over_a_larger_one_leaves_only_its_own_images(tmp_path):
    out = tmp_path / 'data'
    generate(ARM, 3, out, width=120, height=90, seed=1, preview=False)
    (out / 'rgb' / 'notes.png').write_bytes(b'not ours')       # other files are left alone
    generate(ARM, 1, out, width=120, height=90, seed=1, preview=False)
    listed = json.loads((out / 'annotations.json').read_text())['images']
    assert [image['file_name'] for image in listed] == ['rgb/000000.png']
    assert sorted(p.name for p in (out / 'rgb').iterdir()) == ['000000.png', 'notes.png']
    assert sorted(p.name for p in (out / 'depth').iterdir()) == ['000000.png']


def test_bad_input_is_refused(tmp_path, capsys):
    with pytest.raises(SynthError, match='URDF not found'):
        generate(tmp_path / 'missing.urdf', 1, tmp_path / 'x')
    assert synth_main(['--urdf', str(tmp_path / 'missing.urdf'), '--samples', '1',
                       '--output', str(tmp_path / 'y')]) == 2
    assert 'URDF not found' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        synth_main(['--samples', '0', '--output', str(tmp_path / 'z')])


def test_an_image_too_large_or_an_output_that_is_a_file_is_refused_first(tmp_path, capsys):
    from robot_twin.synth import MAX_PIXELS, MAX_SIDE, size_problem
    # a side above 8192 (100000 x 100000 aborted the process in the renderer): exit 2 at once
    out = tmp_path / 'wide'
    assert synth_main(['--samples', '1', '--width', str(MAX_SIDE + 1), '--height', '8',
                       '--output', str(out), '--quiet']) == 2
    err = capsys.readouterr().err
    assert f'--width {MAX_SIDE + 1} is above {MAX_SIDE} pixels' in err, err
    assert len(err.strip().splitlines()) == 1 and not out.exists(), err
    assert 'pixels, above' in size_problem(MAX_SIDE, MAX_SIDE)
    assert size_problem(MAX_SIDE, MAX_PIXELS // MAX_SIDE) is None
    with pytest.raises(SynthError, match='--height 100000 is above'):
        generate(ARM, 1, tmp_path / 'x', width=64, height=100000)
    # --output an existing file (or under one): refused before rendering, as whatif does
    afile = tmp_path / 'afile'
    afile.write_text('x')
    for bad, says in ((afile, 'it is a file, not a folder'),
                      (afile / 'sub', f'{afile} is a file, not a folder')):
        assert synth_main(['--samples', '1', '--width', '64', '--height', '48', '--output',
                           str(bad), '--quiet']) == 2
        err = capsys.readouterr().err
        assert f'robot-twin synth: error: cannot write into --output {bad}: {says}' in err, err
        assert len(err.strip().splitlines()) == 1, err
    assert afile.read_text() == 'x'


def test_the_command_line_prints_no_pybullet_banner(tmp_path):
    # pybullet's C code prints its build time on stderr when first imported; every command
    # that simulates (synth, whatif, commission, anomaly train) takes it through
    # twin_sim.quiet_pybullet, which hides that line
    import subprocess
    import sys
    run = subprocess.run([sys.executable, '-m', 'robot_twin', 'synth', '--urdf', str(ARM),
                          '--samples', '1', '--width', '64', '--height', '48', '--output',
                          str(tmp_path / 'out'), '--no-preview', '--quiet'],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stderr == '' and 'build time' not in run.stdout, run
    modules = subprocess.run([sys.executable, '-c', 'import twin_sim.world, twin_sim.camera'],
                             capture_output=True, text=True, timeout=120)
    assert modules.returncode == 0 and modules.stderr == '', modules
