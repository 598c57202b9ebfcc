//! Activation functions by their HF names (transformers 5.24.0 `activations.py`, `ACT2FN`), shared
//! by every family.

use serde::Deserialize;
use tch::Tensor;

/// The activations of HF's `ACT2FN` (transformers 5.24.0 `activations.py`) that these encoders
/// support; a `hidden_act` outside this list is refused, never replaced by another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum HiddenAct {
    /// `0.5 x (1 + erf(x / sqrt 2))` (`gelu`, and `gelu_python`, its Python spelling).
    #[default]
    Gelu,
    /// The tanh approximation `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))` (`gelu_new`,
    /// `gelu_pytorch_tanh`, `gelu_fast`: one formula).
    GeluTanh,
    /// `x sigmoid(1.702 x)` (`quick_gelu`).
    QuickGelu,
    /// `max(0, x)` (`relu`).
    Relu,
    /// `min(max(0, x), 6)` (`relu6`).
    Relu6,
    /// `x sigmoid(x)` (`silu`, `swish`).
    Silu,
    /// `tanh(x)` (`tanh`).
    Tanh,
    /// `1 / (1 + exp(-x))` (`sigmoid`).
    Sigmoid,
    /// `x tanh(softplus(x))`.
    Mish,
    /// The identity (`linear`).
    Linear,
}

impl HiddenAct {
    /// HF's names, each with the activation it computes.
    pub const NAMES: [(&str, HiddenAct); 14] = [
        ("gelu", HiddenAct::Gelu),
        ("gelu_python", HiddenAct::Gelu),
        ("gelu_new", HiddenAct::GeluTanh),
        ("gelu_pytorch_tanh", HiddenAct::GeluTanh),
        ("gelu_fast", HiddenAct::GeluTanh),
        ("quick_gelu", HiddenAct::QuickGelu),
        ("relu", HiddenAct::Relu),
        ("relu6", HiddenAct::Relu6),
        ("silu", HiddenAct::Silu),
        ("swish", HiddenAct::Silu),
        ("tanh", HiddenAct::Tanh),
        ("sigmoid", HiddenAct::Sigmoid),
        ("mish", HiddenAct::Mish),
        ("linear", HiddenAct::Linear),
    ];

    /// The activation applied elementwise to `x`; a new tensor of the same shape.
    pub fn forward(self, x: &Tensor) -> Tensor {
        match self {
            HiddenAct::Gelu => x.gelu("none"),
            HiddenAct::GeluTanh => x.gelu("tanh"),
            HiddenAct::QuickGelu => x * (x * 1.702).sigmoid(),
            HiddenAct::Relu => x.relu(),
            HiddenAct::Relu6 => x.clamp(0.0, 6.0),
            HiddenAct::Silu => x.silu(),
            HiddenAct::Tanh => x.tanh(),
            HiddenAct::Sigmoid => x.sigmoid(),
            HiddenAct::Mish => x.mish(),
            HiddenAct::Linear => x.shallow_clone(),
        }
    }
}

impl TryFrom<String> for HiddenAct {
    type Error = String;

    fn try_from(name: String) -> Result<HiddenAct, String> {
        HiddenAct::NAMES.iter().find(|(known, _)| *known == name).map(|(_, act)| *act).ok_or_else(|| {
            let known: Vec<&str> = HiddenAct::NAMES.iter().map(|(known, _)| *known).collect();
            format!("hidden_act `{name}` is not supported (supported: {})", known.join(", "))
        })
    }
}
