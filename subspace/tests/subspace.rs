//! DID and SAID: finite-difference check of the whole chain (f64), the compatibility mode's
//! defects reproduced exactly, and up-front errors.

use subspace::fastfood::{Crop, FactorStorage, ProjectorSpec, Scope};
use subspace::{Compat, LambdaGrouping, LayerGroup, Method, Subspace, SubspaceConfig, SubspaceError};
use tch::{Device, Kind, Tensor, nn, nn::Module};

/// A small model with BERT-like names: embeddings, two layers, a head.
struct TinyModel {
    vs: nn::VarStore,
    embed: nn::Linear,
    layers: Vec<nn::Linear>,
    head: nn::Linear,
}

impl TinyModel {
    fn new(seed: i64) -> TinyModel {
        tch::manual_seed(seed);
        let mut vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let embed = nn::linear(&root / "embeddings" / "word", 5, 6, Default::default());
        let layers = (0..2)
            .map(|idx| nn::linear(&root / "encoder" / "layer" / idx / "dense", 6, 6, Default::default()))
            .collect();
        let head = nn::linear(&root / "classifier", 6, 3, Default::default());
        vs.double();
        TinyModel { vs, embed, layers, head }
    }

    fn named_params(&self) -> Vec<(String, Tensor)> {
        let mut params: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        params
    }

    /// The layer group of each of [`TinyModel::named_params`], as the model defines them.
    fn layers(&self) -> Vec<LayerGroup> {
        self.named_params().iter().map(|(name, _)| layer_of(name)).collect()
    }

    fn loss(&self, inputs: &Tensor, targets: &Tensor) -> Tensor {
        let mut hidden = self.embed.forward(inputs).tanh();
        for layer in &self.layers {
            hidden = layer.forward(&hidden).tanh() + hidden;
        }
        // Not `cross_entropy_for_logits`: tch computes its log-softmax in f32 whatever the input.
        self.head.forward(&hidden).log_softmax(-1, Kind::Double).nll_loss(targets)
    }
}

/// The test models' layout: `embeddings.*`, `encoder.layer.<i>.*`, anything else is the head.
fn layer_of(name: &str) -> LayerGroup {
    if name.starts_with("embeddings.") {
        return LayerGroup::Embeddings;
    }
    match name.strip_prefix("encoder.layer.").and_then(|rest| rest.split('.').next()) {
        Some(index) => LayerGroup::Layer(index.parse().unwrap()),
        None => LayerGroup::Head,
    }
}

fn layers_of(params: &[(String, Tensor)]) -> Vec<LayerGroup> {
    params.iter().map(|(name, _)| layer_of(name)).collect()
}

fn config(method: Method, scope: Scope, grouping: LambdaGrouping, d: usize) -> SubspaceConfig {
    SubspaceConfig { method, d, scope, grouping, compat: Compat::None, seed: 11, factor_storage: FactorStorage::Cached }
}

fn loss_at(
    model: &TinyModel,
    subspace: &mut Subspace,
    theta: &Tensor,
    lambda: &Tensor,
    batch: &(Tensor, Tensor),
) -> f64 {
    subspace.set(theta, lambda).unwrap();
    let _guard = tch::no_grad_guard();
    model.loss(&batch.0, &batch.1).double_value(&[])
}

/// `loss(theta_0 + lambda P theta)`: the explicit gradients of theta and lambda against central
/// differences along random directions and along single coordinates.
#[test]
fn gradients_match_finite_differences() {
    let cases = [
        (Method::Did, Scope::Global, LambdaGrouping::PerTensor, 40),
        (Method::Did, Scope::PerTensor, LambdaGrouping::PerTensor, 70),
        (Method::Said, Scope::Global, LambdaGrouping::PerTensor, 40),
        (Method::Said, Scope::PerTensor, LambdaGrouping::PerTensor, 70),
        (Method::Said, Scope::Global, LambdaGrouping::PerLayer, 30),
        (Method::Said, Scope::PerTensor, LambdaGrouping::PerLayer, 90),
    ];
    for (case_idx, &(method, scope, grouping, d)) in cases.iter().enumerate() {
        let model = TinyModel::new(case_idx as i64);
        let mut subspace =
            Subspace::new(&model.named_params(), &model.layers(), config(method, scope, grouping, d)).unwrap();
        let n_lambda = subspace.lambda().numel() as i64;
        let expected_m = match (method, grouping) {
            (Method::Did, _) => 0,
            (Method::Said, LambdaGrouping::PerTensor) => 8,
            (Method::Said, LambdaGrouping::PerLayer) => 4,
        };
        assert_eq!(n_lambda, expected_m, "{method:?} {grouping:?}");
        let theta_len = subspace.theta().numel() as i64;
        assert_eq!(theta_len + n_lambda, d as i64);

        tch::manual_seed(100 + case_idx as i64);
        let batch =
            (Tensor::randn([8, 5], (Kind::Double, Device::Cpu)), Tensor::randint(3, [8], (Kind::Int64, Device::Cpu)));
        let theta = Tensor::randn([theta_len], (Kind::Double, Device::Cpu)) * 0.3;
        let lambda = Tensor::rand([n_lambda], (Kind::Double, Device::Cpu)) + 0.5;

        subspace.set(&theta, &lambda).unwrap();
        model.loss(&batch.0, &batch.1).backward();
        let (grad_theta, grad_lambda) = subspace.gradients().unwrap();
        assert_eq!(grad_lambda.numel() as i64, n_lambda);

        let eps = 1e-5;
        let mut check = |direction_theta: &Tensor, direction_lambda: &Tensor, what: &str| {
            let plus = loss_at(
                &model,
                &mut subspace,
                &(&theta + direction_theta * eps),
                &(&lambda + direction_lambda * eps),
                &batch,
            );
            let minus = loss_at(
                &model,
                &mut subspace,
                &(&theta - direction_theta * eps),
                &(&lambda - direction_lambda * eps),
                &batch,
            );
            let numeric = (plus - minus) / (2.0 * eps);
            let analytic =
                grad_theta.dot(direction_theta).double_value(&[]) + grad_lambda.dot(direction_lambda).double_value(&[]);
            let relative = (numeric - analytic).abs() / numeric.abs().max(analytic.abs()).max(1e-12);
            assert!(
                relative < 1e-6,
                "{method:?} {scope:?} {grouping:?} {what}: numeric {numeric} analytic {analytic} relative {relative}"
            );
        };
        for draw in 0..3 {
            tch::manual_seed(1000 + draw);
            let direction_theta = Tensor::randn([theta_len], (Kind::Double, Device::Cpu));
            let zeros = Tensor::zeros([n_lambda], (Kind::Double, Device::Cpu));
            check(&direction_theta, &zeros, "random theta direction");
            if n_lambda > 0 {
                let direction_lambda = Tensor::randn([n_lambda], (Kind::Double, Device::Cpu));
                check(&(&direction_theta * 0.0), &direction_lambda, "random lambda direction");
            }
        }
        for coordinate in [0, theta_len / 2, theta_len - 1] {
            let unit = Tensor::zeros([theta_len], (Kind::Double, Device::Cpu));
            let _ = unit.get(coordinate).fill_(1.0);
            check(&unit, &Tensor::zeros([n_lambda], (Kind::Double, Device::Cpu)), &format!("theta[{coordinate}]"));
        }
    }
}

#[test]
fn starts_at_theta_0_and_writes_exactly_theta_0_plus_projection() {
    let model = TinyModel::new(3);
    let before: Vec<Tensor> = model.named_params().iter().map(|(_, param)| param.copy()).collect();
    let mut subspace = Subspace::new(
        &model.named_params(),
        &model.layers(),
        config(Method::Said, Scope::Global, LambdaGrouping::PerLayer, 20),
    )
    .unwrap();
    subspace.write_weights().unwrap();
    for ((name, param), original) in model.named_params().iter().zip(&before) {
        assert!(param.equal(original), "{name} moved at theta = 0");
    }
    let mut subspace = subspace;
    let theta = Tensor::randn([16], (Kind::Double, Device::Cpu));
    let lambda = Tensor::from_slice(&[1.0, 2.0, -1.0, 0.5]);
    subspace.set(&theta, &lambda).unwrap();
    let projected = subspace.projector().forward(&theta).unwrap();
    for (((name, param), original), offset) in model.named_params().iter().zip(&before).zip(&projected) {
        let group = if name.starts_with("embeddings") {
            0
        } else if name.contains("layer.0") {
            1
        } else if name.contains("layer.1") {
            2
        } else {
            3
        };
        let expected = original.reshape([-1]) + offset * lambda.double_value(&[group]);
        assert!(param.reshape([-1]).equal(&expected), "{name}");
    }
    let description = subspace.description();
    assert_eq!(
        (description.n_lambda, description.theta_len, description.projector.total_params),
        (4, 16, 5 * 6 + 6 + 2 * 42 + 21)
    );
    let json = serde_json::to_string(&description).unwrap();
    assert!(json.contains("\"scope\":\"global\"") && json.contains("\"grouping\":\"per_layer\""), "{json}");
}

/// Deterministic pseudo-random values with no RNG: torch's global RNG is shared by the tests that
/// run in parallel, so two calls could not reproduce the same draws.
fn wiggle(len: i64, frequency: f64) -> Tensor {
    (Tensor::arange(len, (Kind::Float, Device::Cpu)) * frequency + 0.3).sin() * 2.0
}

fn gradient_through(compat: Compat, method: Method, numel: i64, d: usize) -> (Tensor, Tensor, Subspace) {
    let vs = nn::VarStore::new(Device::Cpu);
    let weight = vs.root().var_copy("weight", &wiggle(numel, 0.7));
    let mut config = config(method, Scope::PerTensor, LambdaGrouping::PerTensor, d);
    config.compat = compat;
    let subspace =
        Subspace::new(&[("weight".to_owned(), weight.shallow_clone())], &[LayerGroup::Head], config).unwrap();
    let theta = wiggle(subspace.theta().numel() as i64, 1.3);
    let lambda = Tensor::ones([subspace.lambda().numel() as i64], (Kind::Float, Device::Cpu)) * 1.5;
    let mut subspace = subspace;
    subspace.set(&theta, &lambda).unwrap();
    (&weight * &weight).sum(Kind::Float).backward();
    let (grad_theta, grad_lambda) = subspace.gradients().unwrap();
    (grad_theta, grad_lambda, subspace)
}

/// The authors' Hadamard backward makes the theta gradient exactly 1/L_t of the true one, and
/// leaves the lambda gradient right.
#[test]
fn compat_theta_gradient_is_exactly_one_over_block_length() {
    for (numel, method) in [(100, Method::Did), (300, Method::Said), (1000, Method::Did)] {
        let block_len = (numel as usize).next_power_of_two() as f64;
        let d = 50;
        let (exact_theta, exact_lambda, _) = gradient_through(Compat::None, method, numel, d);
        let (compat_theta, compat_lambda, compat) = gradient_through(Compat::Aghajanyan, method, numel, d);
        if method == Method::Said {
            // The compat mode carries one extra, unused scale: theta is one shorter.
            assert_eq!(compat.lambda().numel(), 2);
            assert_eq!(compat_lambda.double_value(&[1]), 0.0);
            assert_eq!(compat_theta.numel() + 1, exact_theta.numel());
            let (fresh_theta, _, _) = gradient_through(Compat::None, method, numel, d - 1);
            assert!((&compat_theta * block_len).equal(&fresh_theta), "numel {numel}: compat != exact / L_t");
            assert_eq!(
                compat_lambda.double_value(&[0]),
                gradient_through(Compat::None, method, numel, d - 1).1.double_value(&[0])
            );
        } else {
            assert!((&compat_theta * block_len).equal(&exact_theta), "numel {numel}: compat != exact / L_t");
            assert_eq!((exact_lambda.numel(), compat_lambda.numel()), (0, 0));
        }
    }
}

/// The authors' code crops theta to L_t for every tensor with L_t < len(theta), and only there.
#[test]
fn compat_crops_exactly_where_the_authors_code_crops() {
    tch::manual_seed(8);
    let vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    let numels = [("a_bias", 6i64), ("b_weight", 40), ("c_out", 2), ("d_big", 300)];
    let params: Vec<(String, Tensor)> =
        numels.iter().map(|(name, numel)| (name.to_string(), root.randn(name, &[*numel], 0.0, 1.0))).collect();
    let d = 60;
    let mut config = config(Method::Did, Scope::PerTensor, LambdaGrouping::PerTensor, d);
    config.compat = Compat::Aghajanyan;
    let mut subspace = Subspace::new(&params, &layers_of(&params), config).unwrap();
    assert_eq!(subspace.description().projector.n_groups_cropped_by_authors_code, 2);
    let before: Vec<Tensor> = params.iter().map(|(_, param)| param.copy()).collect();
    // Move only the coordinates past each block length: tensors with L_t < 60 must not move.
    let theta = Tensor::zeros([d as i64], (Kind::Float, Device::Cpu));
    let _ = theta.narrow(0, 59, 1).fill_(1.0);
    subspace.set(&theta, &Tensor::zeros([0], (Kind::Float, Device::Cpu))).unwrap();
    for ((name, numel), (param, original)) in numels.iter().zip(params.iter().map(|(_, p)| p).zip(&before)) {
        let block_len = (*numel as usize).next_power_of_two();
        let moved = !param.equal(original);
        assert_eq!(moved, block_len >= d, "{name}: L_t = {block_len}, moved = {moved}");
    }
}

#[test]
fn rejects_impossible_requests_up_front() {
    let model = TinyModel::new(1);
    let params = model.named_params();
    let said = |d, grouping, compat| {
        let mut config = config(Method::Said, Scope::PerTensor, grouping, d);
        config.compat = compat;
        Subspace::new(&params, &layers_of(&params), config).err().unwrap()
    };
    let err = said(8, LambdaGrouping::PerTensor, Compat::None);
    assert!(matches!(err, SubspaceError::DimensionTooSmall { d: 8, m: 8, .. }), "{err}");
    assert!(matches!(said(4, LambdaGrouping::PerLayer, Compat::None), SubspaceError::DimensionTooSmall { m: 4, .. }));
    let err = said(9, LambdaGrouping::PerTensor, Compat::Aghajanyan);
    assert!(
        matches!(err, SubspaceError::DimensionTooSmall { m: 9, .. }) && err.to_string().contains("unused"),
        "{err}"
    );
    assert!(matches!(
        said(50, LambdaGrouping::PerLayer, Compat::Aghajanyan),
        SubspaceError::CompatNeedsPerTensorGrouping
    ));
    let mut global_compat = config(Method::Did, Scope::Global, LambdaGrouping::PerTensor, 10);
    global_compat.compat = Compat::Aghajanyan;
    assert!(matches!(
        Subspace::new(&params, &layers_of(&params), global_compat).err().unwrap(),
        SubspaceError::CompatNeedsPerTensor
    ));
    let one_short = &layers_of(&params)[1..];
    let mismatch = Subspace::new(&params, one_short, config(Method::Did, Scope::Global, LambdaGrouping::PerTensor, 10));
    assert!(
        matches!(mismatch.err().unwrap(), SubspaceError::LayerGroups { groups: 7, params: 8 }),
        "one layer group per tensor"
    );
    let too_big = config(Method::Did, Scope::Global, LambdaGrouping::PerTensor, 10_000);
    assert!(matches!(
        Subspace::new(&params, &layers_of(&params), too_big).err().unwrap(),
        SubspaceError::DimensionTooLarge { total: 141, .. }
    ));
    let subspace =
        Subspace::new(&params, &layers_of(&params), config(Method::Did, Scope::Global, LambdaGrouping::PerTensor, 10))
            .unwrap();
    let err = subspace.gradients().err().unwrap();
    assert!(matches!(err, SubspaceError::MissingGradient { .. }), "{err}");
}

/// Subspaces built one after another with the same projector key (a probe's learning rates at one
/// `(d, seed)`) share one projector instead of generating its factors again; another seed, `d`
/// or scope gets its own; and a shared projector gives the weights a fresh one gives.
#[test]
fn consecutive_subspaces_with_one_key_share_their_projector() {
    let model = TinyModel::new(5);
    let params = model.named_params();
    let said = config(Method::Said, Scope::Global, LambdaGrouping::PerLayer, 20);
    let first = Subspace::new(&params, &layers_of(&params), said.clone()).unwrap();
    let second = Subspace::new(&params, &layers_of(&params), said.clone()).unwrap();
    assert!(std::ptr::eq(first.projector(), second.projector()), "same key: one projector");
    for other in [
        SubspaceConfig { seed: 12, ..said.clone() },
        SubspaceConfig { d: 21, ..said.clone() },
        SubspaceConfig { scope: Scope::PerTensor, ..said.clone() },
    ] {
        let subspace = Subspace::new(&params, &layers_of(&params), other.clone()).unwrap();
        assert!(!std::ptr::eq(first.projector(), subspace.projector()), "{other:?}: a projector of its own");
    }
    let theta = Tensor::randn([16], (Kind::Double, Device::Cpu));
    let shared = first.projector().forward(&theta).unwrap();
    let fresh = subspace::fastfood::Projector::new(
        &params.iter().map(|(name, param)| (name.clone(), param.numel())).collect::<Vec<_>>(),
        ProjectorSpec {
            d: 16,
            scope: Scope::Global,
            seed: 11,
            crop: Crop::None,
            storage: FactorStorage::Cached,
            device: Device::Cpu,
        },
    )
    .unwrap()
    .forward(&theta)
    .unwrap();
    for (shared, fresh) in shared.iter().zip(&fresh) {
        assert!(shared.equal(fresh));
    }
}

/// In f32, with scales that are not powers of two and tensors whose lengths are not multiples of
/// a vector width, every weight is `theta_0 + lambda * P(theta)` to within the roundings of the
/// plain formula. The write is one fused `addcmul` per tensor, which PyTorch's vectorised CPU
/// kernel computes with a fused multiply-add (one rounding, where the plain two-operation formula
/// rounds twice), so about one weight in eight differs from the plain formula by one unit in the
/// last place; the exact value is the reference both are within one rounding of.
#[test]
fn f32_weights_are_theta_0_plus_the_scaled_projection_to_rounding() {
    tch::manual_seed(8);
    let params: Vec<(String, Tensor)> =
        [("embeddings.weight", 1001), ("encoder.layer.0.weight", 77), ("classifier.bias", 3)]
            .iter()
            .map(|(name, numel)| {
                (name.to_string(), Tensor::randn([*numel], (Kind::Float, Device::Cpu)).set_requires_grad(true))
            })
            .collect();
    let before: Vec<Tensor> = params.iter().map(|(_, param)| param.detach().copy()).collect();
    let mut subspace = Subspace::new(
        &params,
        &layers_of(&params),
        SubspaceConfig {
            method: Method::Said,
            d: 40,
            scope: Scope::Global,
            grouping: LambdaGrouping::PerLayer,
            compat: Compat::None,
            seed: 2,
            factor_storage: FactorStorage::Cached,
        },
    )
    .unwrap();
    let theta = Tensor::randn([37], (Kind::Float, Device::Cpu));
    let lambda = Tensor::from_slice(&[0.7f32, 1.3, -0.11]);
    subspace.set(&theta, &lambda).unwrap();
    let projected = subspace.projector().forward(&theta).unwrap();
    for (tensor_idx, ((name, param), original)) in params.iter().zip(&before).enumerate() {
        let (theta0, step) = (
            original.to_kind(Kind::Double),
            projected[tensor_idx].to_kind(Kind::Double) * lambda.double_value(&[tensor_idx as i64]),
        );
        let exact = &theta0 + &step;
        // Within one rounding of each operation: 2^-24 of |theta_0| + |lambda P theta| twice.
        let bound = (theta0.abs() + step.abs()) * 2f64.powi(-23);
        for (what, value) in [
            ("written", param.detach()),
            ("plain formula", original + &projected[tensor_idx] * lambda.get(tensor_idx as i64)),
        ] {
            let excess = ((value.to_kind(Kind::Double) - &exact).abs() - &bound).max().double_value(&[]);
            assert!(excess <= 0.0, "{name}: the {what} weights are further than two roundings from the exact value");
        }
    }
}
