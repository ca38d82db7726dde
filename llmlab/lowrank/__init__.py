"""Bonus track: low-rank methods (SVD, LoRA theory, low-rank optimisation), one concept per file.

- ``llmlab.lowrank.svd`` -- bonus notebook 1: the SVD from the Gram matrix and by power iteration, randomized
  SVD (Halko et al.), the best rank-r approximation and its error (Eckart-Young), the spectra of a model's
  weight matrices.
- ``llmlab.lowrank.galore`` -- bonus notebook 3: GaLore's gradient projection and ``GaLoreAdam`` (Adam's moments in
  each gradient's top-r singular subspace), and the optimizer-state sizes of Adam, LoRA and GaLore.
"""
