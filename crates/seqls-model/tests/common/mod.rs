//! What the model's tests share: every parameter's gradient, in the model's parameter order.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use seqls_model::Transformer;
use seqls_model::tensors::f32_vec;

struct Collect<'a> {
    grads: &'a GradientsParams,
    out: Vec<Vec<f32>>,
}

impl ModuleVisitor for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let g = self
            .grads
            .get::<D>(param.id)
            .expect("every parameter has a gradient");
        self.out.push(f32_vec(g));
    }
}

/// Every parameter's gradient in `grads`, in the model's parameter order.
pub fn gradients(model: &Transformer, grads: &GradientsParams) -> Vec<Vec<f32>> {
    let mut collect = Collect { grads, out: vec![] };
    model.visit(&mut collect);
    collect.out
}
