"""The paper's evidence, reproducible: Fig. 6, Fig. 7 and Table 6 of He et al. (2015).

    keras-resnet-analysis degradation --depths 20 56 --dataset cifar10 --data-dir .data
    keras-resnet-analysis layer-responses --dataset cifar10 --data-dir .data \\
        --model runs/degradation/plain20 --model runs/degradation/resnet20
    keras-resnet-analysis depth-table --depths 20 32 44 56 110 --dataset cifar10
    python -m keras_resnet.analysis redraw --results-dir docs/paper_table6

By job, a module each:

- `responses`: Fig. 7, the standard deviation of every 3x3 layer's response
  (after its batch normalization, before the addition and the ReLU) over the
  test set, per channel, then averaged over the layer's channels.
- `sweeps`: `degradation` (Fig. 6: the plain and the residual, option A, CIFAR
  net of each depth with one recipe, then Fig. 7 from the same nets) and
  `depth_table` (Table 6: the residual nets of each depth); each net an
  ordinary run directory, its small results kept in a results folder from
  which a sweep resumes, on another machine if need be; `redraw`.
- `reports`: the tables (CSV, Markdown) and figures, each CSV written and read
  in one row layout; also a hyperparameter search's `results.md`.

The command is `keras_resnet.cli.analysis`.
"""

from keras_resnet.analysis.reports import (
    AKAMASTER_ERRORS,
    PAPER_TABLE6,
    display_name,
    parse_run_name,
    run_name,
)
from keras_resnet.analysis.responses import (
    layer_response_analysis,
    layer_responses,
    load_models,
    response_layers,
    response_rows,
)
from keras_resnet.analysis.sweeps import (
    DEGRADATION_DEPTHS,
    TABLE_DEPTHS,
    degradation,
    depth_table,
    redraw,
    train_sweep,
)
