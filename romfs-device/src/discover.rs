//! Finding the board when no `--port` is given: the one USB serial device
//! connected, as mpremote's `connect auto` does (it takes the first; we
//! refuse to guess between several).

use crate::error::{Error, ErrorKind, Result};

/// USB vendor ids of boards that run MicroPython natively: MicroPython's
/// own (0xf055) and Raspberry Pi's (0x2e8a). Preferred when several USB
/// serial devices are connected.
const MICROPYTHON_VIDS: [u16; 2] = [0xf055, 0x2e8a];

/// A USB serial device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsbPort {
    /// Device path.
    pub path: String,
    /// USB vendor id.
    pub vid: u16,
    /// USB product id.
    pub pid: u16,
    /// Product string, if the device gives one.
    pub product: Option<String>,
}

/// The USB serial devices connected, sorted by path.
pub fn usb_ports() -> Vec<UsbPort> {
    let Ok(ports) = serialport::available_ports() else {
        return Vec::new();
    };
    let mut found: Vec<UsbPort> = ports
        .into_iter()
        .filter_map(|p| match p.port_type {
            serialport::SerialPortType::UsbPort(info) => Some(UsbPort {
                path: p.port_name,
                vid: info.vid,
                pid: info.pid,
                product: info.product,
            }),
            _ => None,
        })
        .collect();
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}

/// The one port to use among `ports`: the only one, or the only one with a
/// MicroPython vendor id.
pub fn choose(ports: &[UsbPort]) -> Result<String> {
    match ports {
        [] => Err(Error::new("", ErrorKind::NoDevice)),
        [one] => Ok(one.path.clone()),
        several => {
            let native: Vec<&UsbPort> = several
                .iter()
                .filter(|p| MICROPYTHON_VIDS.contains(&p.vid))
                .collect();
            match native[..] {
                [one] => Ok(one.path.clone()),
                _ => Err(Error::new(
                    "",
                    ErrorKind::SeveralDevices(
                        several
                            .iter()
                            .map(|p| match &p.product {
                                Some(name) => format!("{} ({name})", p.path),
                                None => p.path.clone(),
                            })
                            .collect(),
                    ),
                )),
            }
        }
    }
}

/// The single USB serial device connected.
pub fn single_port() -> Result<String> {
    choose(&usb_ports())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(path: &str, vid: u16) -> UsbPort {
        UsbPort {
            path: path.into(),
            vid,
            pid: 5,
            product: Some("Board".into()),
        }
    }

    #[test]
    fn choosing() {
        assert!(matches!(choose(&[]).unwrap_err().kind, ErrorKind::NoDevice));
        assert_eq!(
            choose(&[port("/dev/ttyACM0", 0x1234)]).unwrap(),
            "/dev/ttyACM0"
        );
        let two = [port("/dev/ttyACM0", 0x0403), port("/dev/ttyACM1", 0x2e8a)];
        assert_eq!(choose(&two).unwrap(), "/dev/ttyACM1");
        let e = choose(&[port("/dev/ttyUSB0", 1), port("/dev/ttyUSB1", 2)]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "several USB serial devices are connected (/dev/ttyUSB0 (Board), /dev/ttyUSB1 (Board)): choose one with --port"
        );
    }
}
