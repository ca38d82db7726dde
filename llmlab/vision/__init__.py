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
``open_clip_port.py``     the course CLIP as a registered open_clip model: its config and the parameter mapping
``qformer.py``            BLIP-2's Q-Former (``Blip2QFormerModel`` parameter names)
``blip2_port.py``         the course captioner as ``transformers.Blip2ForConditionalGeneration``
``projector.py``          LLaVA's modality projector (linear or 2-layer MLP)
``vlm.py``                a LLaVA-style VLM: ViT -> projector -> the course Llama via ``inputs_embeds``; image-token
                          splicing and the label mask; conversion to ``LlavaForConditionalGeneration``
``instructions.py``       visual instructions (what / colour / shape / meal, English and Chinese) and their scorer
``vqa.py``                LLaVA's two training stages, greedy answers, VQA accuracy and chance levels per question type
``pretrained.py``         the zoo's ``food-clip`` and ``food-vlm`` (built on first use, with their measured accuracy)
``explain.py``            attention rollout, Grad-CAM, occlusion maps, the pointing game
``pipeline.py``           the food labeller: region proposals -> attributes (CLIP, pixels) -> scene -> consumption,
                          as JSON with a schema; per-stage scores and error tracing
========================  =====================================================================================
"""
