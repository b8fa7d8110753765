"""Where rnnlab's Hydra configs live: a bottom module (it imports nothing of rnnlab), so that a
module that needs the path -- the CLI, the sweep and dashboard builders, the tests -- does not
import the training app (torch, Lightning) to read it.

The tree lives at the top of the repository (conf/). An installed wheel carries a copy inside the
package (rnnlab/conf, copied at build time by setup.py); a source checkout or an editable install
has none there and reads the checkout's conf/."""

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[1]  # src/rnnlab/config -> src/rnnlab
_PACKAGED = _PACKAGE / "conf"  # an installed wheel
_CHECKOUT = _PACKAGE.parents[1] / "conf"  # src/rnnlab -> the repository's top-level conf/

CONFIG_NAME = "train"
CONFIG_DIR = str(_PACKAGED if (_PACKAGED / f"{CONFIG_NAME}.yaml").is_file() else _CHECKOUT)
