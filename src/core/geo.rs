//! Positions and travel time.
//!
//! Straight-line distance lies in fjord country (Vik–Sogndal is 30 km but 54 minutes
//! by road and ferry), so staff are ranked by *estimated travel time*: the configured
//! driving-time matrix between zones where it has an entry, otherwise great-circle
//! distance times a road factor at a configured speed.
//!
//! Great-circle distance is the haversine formula on a sphere of the Earth's mean
//! radius: six lines, so written here rather than pulling in `geo` for one function.
//! Its error against the ellipsoid (≤ 0.5 %) is far below the road-factor guess.

use std::fmt;
use std::time::Duration;

/// Mean Earth radius (IUGG), metres.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A WGS 84 position. Finite, latitude in [-90, 90], longitude in [-180, 180].
#[derive(Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "RawPosition", into = "RawPosition")]
pub struct Position {
    lat: f64,
    lon: f64,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPosition {
    lat: f64,
    lon: f64,
}

impl TryFrom<RawPosition> for Position {
    type Error = PositionError;
    fn try_from(r: RawPosition) -> Result<Self, PositionError> {
        Position::new(r.lat, r.lon)
    }
}

impl From<Position> for RawPosition {
    fn from(p: Position) -> Self {
        RawPosition { lat: p.lat, lon: p.lon }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PositionError(pub &'static str);

impl fmt::Display for PositionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid position: {}", self.0)
    }
}

impl std::error::Error for PositionError {}

impl Position {
    pub fn new(lat: f64, lon: f64) -> Result<Self, PositionError> {
        if !lat.is_finite() || !lon.is_finite() {
            return Err(PositionError("latitude and longitude must be finite numbers"));
        }
        if !(-90.0..=90.0).contains(&lat) {
            return Err(PositionError("latitude must be within -90..90"));
        }
        if !(-180.0..=180.0).contains(&lon) {
            return Err(PositionError("longitude must be within -180..180"));
        }
        Ok(Self { lat, lon })
    }
    pub fn lat(self) -> f64 {
        self.lat
    }
    pub fn lon(self) -> f64 {
        self.lon
    }

    /// Great-circle (haversine) distance in metres.
    pub fn distance_m(self, other: Position) -> f64 {
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dp = p2 - p1;
        let dl = (other.lon - self.lon).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
    }

    /// The point on the unit sphere. Euclidean (chord) distance between these is
    /// monotone in great-circle distance, so an R-tree over them answers
    /// "nearest by great circle" exactly.
    pub fn unit_vector(self) -> [f64; 3] {
        let (lat, lon) = (self.lat.to_radians(), self.lon.to_radians());
        [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
    }
}

impl fmt::Debug for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({:.5}, {:.5})", self.lat, self.lon)
    }
}

/// How a team travels where the matrix has no entry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TravelModel {
    /// Road distance divided by great-circle distance (≥ 1).
    pub road_factor: f64,
    /// Average driving speed, km/h (> 0).
    pub speed_kmh: f64,
}

impl TravelModel {
    pub fn new(road_factor: f64, speed_kmh: f64) -> Result<Self, PositionError> {
        if !(road_factor.is_finite() && road_factor >= 1.0) {
            return Err(PositionError("road factor must be a finite number ≥ 1"));
        }
        if !(speed_kmh.is_finite() && speed_kmh > 0.0 && speed_kmh <= 200.0) {
            return Err(PositionError("speed must be within (0, 200] km/h"));
        }
        Ok(Self { road_factor, speed_kmh })
    }

    pub fn eta(&self, from: Position, to: Position) -> Duration {
        let metres = from.distance_m(to) * self.road_factor;
        Duration::from_millis((metres / (self.speed_kmh / 3.6) * 1000.0).round() as u64)
    }
}

impl Default for TravelModel {
    fn default() -> Self {
        Self { road_factor: 1.4, speed_kmh: 50.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(lat: f64, lon: f64) -> Position {
        Position::new(lat, lon).unwrap()
    }

    #[test]
    fn haversine_matches_known_distances() {
        // One degree of latitude ≈ 111.195 km on the mean sphere.
        let d = p(60.0, 7.0).distance_m(p(61.0, 7.0));
        assert!((d - 111_195.0).abs() < 5.0, "{d}");
        // Sogndalsfjøra – Vikøyri: about 30 km straight line (DOMAIN.md).
        let d = p(61.2297, 7.1006).distance_m(p(61.0876, 6.5853));
        assert!((28_000.0..32_000.0).contains(&d), "{d}");
        assert_eq!(p(61.0, 7.0).distance_m(p(61.0, 7.0)), 0.0);
    }

    #[test]
    fn unit_vectors_order_like_great_circle_distance() {
        let home = p(61.23, 7.10);
        let near = p(61.24, 7.11);
        let far = p(61.40, 7.30);
        let chord = |a: [f64; 3], b: [f64; 3]| (0..3).map(|i| (a[i] - b[i]).powi(2)).sum::<f64>();
        assert!(chord(home.unit_vector(), near.unit_vector()) < chord(home.unit_vector(), far.unit_vector()));
    }

    #[test]
    fn invalid_positions_cannot_be_built() {
        assert!(Position::new(91.0, 0.0).is_err());
        assert!(Position::new(0.0, -180.5).is_err());
        assert!(Position::new(f64::NAN, 0.0).is_err());
        assert!(TravelModel::new(0.9, 50.0).is_err());
        assert!(TravelModel::new(1.2, 0.0).is_err());
    }

    #[test]
    fn eta_uses_road_factor_and_speed() {
        let t = TravelModel::new(1.5, 60.0).unwrap();
        // 10 km straight → 15 km road at 60 km/h = 15 minutes.
        let a = p(60.0, 7.0);
        let b = p(60.0 + 10_000.0 / 111_195.0, 7.0);
        let eta = t.eta(a, b).as_secs_f64();
        assert!((eta - 900.0).abs() < 1.0, "{eta}");
    }
}
