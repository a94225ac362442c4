//! Reading runs and showing them: the run reader, SVG figures, the HTML/Markdown report and
//! the pieces the dashboard serves.

pub mod figures;
pub mod page;
pub mod run;
pub mod svg;
