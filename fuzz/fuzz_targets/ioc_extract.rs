//! Fuzz the IOC extractor: free text (refanged, scanned) and whole documents through the
//! normaliser. Must never panic; every defanged value must refang back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::engine::ioc::{self, IocKind};
use vigil::engine::normalize::{normalize_line, Parsed};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for i in ioc::extract_text(&text, "fuzz") {
        let d = ioc::defang(i.kind, &i.value);
        if matches!(i.kind, IocKind::Domain | IocKind::Ipv4 | IocKind::Email) {
            assert_eq!(ioc::refang(&d), i.value, "defang/refang of {:?}", i);
        }
        let _ = i.may_leave_the_machine();
    }
    if let Ok(Parsed::Alert(a, _)) = normalize_line(data) {
        let _ = ioc::extract(&a);
    }
});
