use versus::platform::container::{ContainerOptions, ContainerPlatform};
use versus::platform::process::ProcessPlatform;
use versus::platform::{LaunchSpec, Platform};

#[test]
fn smoke() {
    for p in [Box::new(ProcessPlatform::new().unwrap()) as Box<dyn Platform>, Box::new(ContainerPlatform::new(ContainerOptions::default()).unwrap())] {
        let mut i = p.launch(&LaunchSpec::new("call:1".parse().unwrap())).unwrap();
        println!("{} boot {:?} {}", p.name(), i.boot().phases, i.boot().total_ms());
        let f = i.finish().unwrap();
        println!("{:?}", f.results);
        println!("teardown {}", i.stop().unwrap());
    }
}
