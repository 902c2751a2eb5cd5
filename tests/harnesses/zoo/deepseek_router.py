"""Two MoE routers from mlx-lm, on the same hidden states (put_along_axis traces to ScatterAxis):
(1) deepseek_v3.MoEGate (imported; its group_expert_select is @mx.compile'd): sigmoid scores in float32
    plus e_score_correction_bias, group-limited selection (mx.topk(2) per group, mx.argpartition over
    groups, mx.put_along_axis zeroing the dropped groups), mx.argpartition top-k, mx.take_along_axis,
    renormalisation and routed_scaling_factor;
(2) mixtral.MixtralSparseMoeBlock's gate: nn.Linear router, argpartition top-k on the logits,
    take_along_axis, softmax(precise) over the k picked logits."""
import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models import deepseek_v3

D, E, TOP_K, N_GROUP, TOPK_GROUP = 256, 32, 4, 4, 2
ARGS = deepseek_v3.ModelArgs(model_type="deepseek_v3", vocab_size=100, hidden_size=D, intermediate_size=512,
                             moe_intermediate_size=128, num_hidden_layers=1, num_attention_heads=4,
                             num_key_value_heads=4, n_shared_experts=1, n_routed_experts=E,
                             routed_scaling_factor=2.5, kv_lora_rank=64, q_lora_rank=64,
                             qk_rope_head_dim=16, v_head_dim=32, qk_nope_head_dim=32, topk_method="noaux_tc",
                             scoring_func="sigmoid", norm_topk_prob=True, n_group=N_GROUP,
                             topk_group=TOPK_GROUP, num_experts_per_tok=TOP_K)
mx.random.seed(20)
GATE = deepseek_v3.MoEGate(ARGS)
GATE.weight = 0.06 * mx.random.normal((E, D))
GATE.e_score_correction_bias = 0.05 * mx.random.normal((E,))
MIXTRAL_GATE = nn.Linear(D, 8, bias=False)
mx.eval(GATE.parameters(), MIXTRAL_GATE.parameters())
SHAPES = {"small": (1, 8), "typical": (2, 64), "large": (2, 256)}


def mixtral_route(x, k=2):
    gates = MIXTRAL_GATE(x)
    inds = mx.stop_gradient(mx.argpartition(-gates, kth=k - 1, axis=-1)[..., :k])
    scores = mx.take_along_axis(gates, inds, axis=-1)
    scores = mx.softmax(scores, axis=-1, precise=True)
    return inds, scores


def fn(x):
    ds_inds, ds_scores = GATE(x)
    mx_inds, mx_scores = mixtral_route(x)
    return ds_inds, ds_scores, mx_inds, mx_scores


def input_factory(size_label, seed):
    b, t = SHAPES[size_label]
    return (mx.random.normal((b, t, D), key=mx.random.key(seed)),), {}
