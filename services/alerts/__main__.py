from services.alerts.app import SERVICE, create_app
from shared.service import run_service

run_service(SERVICE,
            "Churnwatch alerts: tells the owning CSM about risk signals, on Slack and by email.",
            create_app)
