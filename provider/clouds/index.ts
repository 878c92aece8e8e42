/** Every cloud registers its join methods (and, later, fetchers and installers) when imported. */
import "./aws";
import "./gcp";
