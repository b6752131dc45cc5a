-- The main job: the packaged base -> instruct -> RL pipeline (recipes/pipeline.lua) at its default
-- CPU size: data generation, a SentencePiece vocabulary, pretraining, SFT, GRPO, held-out
-- evaluation after every stage, and report.md with plots in the run directory.
--   build/mathrl run recipes/main.lua                          (CPU size, a few minutes on 2 cores)
--   build/mathrl run recipes/main.lua --set 'params.size="gpu"'  (one GPU)
return require "pipeline"
