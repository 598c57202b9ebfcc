use std::time::Instant;
use tch::{Device, Kind, Tensor};
fn main() {
    let l = 1i64 << 26;
    let x = Tensor::randn([l], (Kind::Float, Device::Cpu));
    let signs = Tensor::randint(2, [l], (Kind::Int8, Device::Cpu));
    let perm = Tensor::randperm(l, (Kind::Int, Device::Cpu));
    let gauss = Tensor::randn([l], (Kind::Float, Device::Cpu));
    for _ in 0..2 {
        let t = Instant::now();
        let v = x.constant_pad_nd([0, 0]);
        let t1 = t.elapsed();
        let t = Instant::now();
        let mut v = v * &signs;
        let t2 = t.elapsed();
        let t = Instant::now();
        bench_suite::fwht::fwht_in_place(&mut v).unwrap();
        let t3 = t.elapsed();
        let t = Instant::now();
        let v = v.index_select(0, &perm);
        let t4 = t.elapsed();
        let t = Instant::now();
        let v = v * &gauss;
        let t5 = t.elapsed();
        let t = Instant::now();
        let v = v.narrow(0, 0, l - 100) * 0.5;
        let t6 = t.elapsed();
        println!("pad {t1:?} signs {t2:?} fwht {t3:?} gather {t4:?} gauss {t5:?} crop*scale {t6:?} {}", v.numel());
    }
}
