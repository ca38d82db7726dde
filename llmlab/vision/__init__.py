"""Week 8: vision and vision-language models, small enough to train on a CPU.

========================  =====================================================================================
file                      what
========================  =====================================================================================
``images.py``             synthetic food images, scenes and attribute objects with exact ground truth; splits
                          with held-out colour-shape pairs; captions (English, Chinese); scikit-image photos
``vit.py``                a ViT image encoder (Hugging Face ``CLIPVisionModel`` parameter names)
``text.py``               a word-level tokenizer for captions and a causal text transformer (``CLIPTextModel`` names)
``clip.py``               CLIP: both towers, projections, learnable temperature; the symmetric InfoNCE loss;
                          zero-shot classification and retrieval recall; conversion to ``transformers.CLIPModel``
``qformer.py``            BLIP-2's Q-Former (``Blip2QFormerModel`` parameter names)
``projector.py``          LLaVA's modality projector (linear or 2-layer MLP)
``vlm.py``                a LLaVA-style VLM: ViT -> projector -> the course Llama via ``inputs_embeds``; image-token
                          splicing and the label mask; conversion to ``LlavaForConditionalGeneration``
``explain.py``            attention rollout, Grad-CAM, occlusion maps, the pointing game
``pipeline.py``           the food labeller: region proposals -> attributes (CLIP, pixels) -> scene -> consumption,
                          as JSON with a schema; per-stage scores and error tracing
``food_vlm.py``           the zoo's ``food-vlm`` by name (notebook 4's recipe, trained when missing)
========================  =====================================================================================
"""
